// Tests of privsep check, graph and gen.
