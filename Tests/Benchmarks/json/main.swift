print("bench-json: not yet")
