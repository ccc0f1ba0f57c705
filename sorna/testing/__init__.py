"""In-memory doubles of the parts Sorna talks to, for Sorna's tests and its users'."""
