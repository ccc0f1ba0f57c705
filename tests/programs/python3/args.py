import sys

args = sys.argv[1:]
print(f"argc: {len(args)}")
for i, arg in enumerate(args, start=1):
    print(f"{i}: {arg}")
