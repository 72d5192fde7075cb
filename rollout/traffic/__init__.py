"""TrafficSplit adapters: the only code that writes weights to the cluster."""
