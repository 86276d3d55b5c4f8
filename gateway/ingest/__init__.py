"""The device side: the MQTT subscriber, the writer process, the ledger and bag registry, the broker, its ACL and the publisher."""
