print("privsep")
