"""Uploads one file with tuspy, unmodified, as an application would, checksumming each
chunk (sha1): python tus_upload.py ENDPOINT TOKEN PATH CHUNK_BYTES
Prints "progress N" after each chunk and "done MEDIA_ID" at the end (from the last
answer's Framehouse-Media-Id header)."""

import os
import sys

from tusclient import client

endpoint, token, path, chunk = sys.argv[1:5]
size = os.path.getsize(path)
uploader = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"}).uploader(
    path,
    chunk_size=int(chunk),
    metadata={"filename": os.path.basename(path), "filetype": "image/bmp"},
    upload_checksum=True,
    # The test kills the server: keep retrying while it comes back.
    retries=120,
    retry_delay=0.5,
)
while uploader.offset < size:
    uploader.upload_chunk()
    print(f"progress {uploader.offset * 100 // size}", flush=True)
media = uploader.request.response_headers.get("framehouse-media-id")
print(f"done {media}", flush=True)
sys.exit(0 if media else 3)
