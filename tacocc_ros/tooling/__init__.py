"""Tools around the node: run it as a process, replay a bag through it and record, generate the reference doc."""
