"""Uploads every file of a folder with tuspy, one after another, as a script using the
library would (bench/tus.sh's reference for `framehouse upload --jobs 8`):
python tuspy_many.py ENDPOINT TOKEN FOLDER. Prints the seconds it took."""

import os
import sys
import time

from tusclient import client

endpoint, token, folder = sys.argv[1:4]
tus = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
names = sorted(os.listdir(folder))
start = time.monotonic()
for name in names:
    path = os.path.join(folder, name)
    tus.uploader(path, chunk_size=8 << 20, metadata={"filename": name}).upload()
print(f"{time.monotonic() - start:.3f}")
