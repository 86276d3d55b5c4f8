# Picks the board: the ESP32 handheld on the chip, the simulated one anywhere else.
import sys


def make_board():
    if sys.platform == "esp32":
        from hal.esp32 import Board
    else:
        from hal.sim import Board
    return Board()
