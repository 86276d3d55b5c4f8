"""tools/sim fleet, one module per job: the scenario's plan, the network link, what each
handheld does, the progress display, running the day, the end check and the command line."""
