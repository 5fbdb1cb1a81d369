print("bench-schema: not yet")
