"""The Sorna agent: runs kernel containers on one host and relays code to them."""
