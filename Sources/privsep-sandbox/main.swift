print("privsep-sandbox")
