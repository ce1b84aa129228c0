import time

print("allocating until the memory limit stops me", flush=True)
blocks = []
while True:
    blocks.append(b"\x01" * (32 * 1024 * 1024))  # written, so the pages really count
    print(f"holding {len(blocks) * 32} MiB", flush=True)
    time.sleep(0.02)
