"""Studies: measurements that answer a question about the method (does k matter, where does the gradient go)."""
