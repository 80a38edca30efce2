"""clusterlab: a whole clusterd cluster on one machine, built from Linux namespaces."""
