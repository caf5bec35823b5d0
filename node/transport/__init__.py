"""Moving bytes: the Kafka producer/consumer wrappers and the embedded development broker."""
