"""Export of the files an execution created or changed to S3 (boto3, in a thread pool).

Each file goes to `s3://BUCKET/<entry_id or kernel_id>/<path>`. A failed upload is logged
and skipped: the execution's result is returned all the same.
"""

import threading

import boto3
from botocore.config import Config
from twisted.logger import Logger

from sorna.defer import deferred
from sorna.proto.errors import SornaError

log = Logger(namespace="sorna.agent")


class S3Exporter:
    def __init__(self, bucket, pool, endpoint_url=None, max_files=50, max_size=16 << 20):
        self.bucket = bucket
        self.pool = pool
        self.endpoint_url = endpoint_url
        self.max_files = max_files
        self.max_size = max_size
        self._local = threading.local()

    @deferred
    async def export(self, kernels, kernel, run):
        """Download each changed file from the kernel, upload it; `run.files` becomes the
        list of the objects' s3:// URLs."""
        prefix = run.entry_id or kernel.kernel_id
        exported = []
        for path in run.files[:self.max_files]:
            key = object_key(prefix, path)
            if key is None:
                log.warn("not exporting {path!r} of kernel {kernel}: not a plain relative "
                         "path", path=path[:200], kernel=kernel.kernel_id)
                continue
            try:
                reply = await kernels.file_request(kernel.kernel_id,
                                                   {"action": "download", "path": path})
            except SornaError as e:
                log.warn("not exporting {path} of kernel {kernel}: {cause}", path=path,
                         kernel=kernel.kernel_id, cause=e.cause)
                continue
            if len(reply["data"]) > self.max_size:
                continue
            try:
                await self.pool.run(self._thd_put, key, reply["data"])
            except Exception as e:
                # S3 being away would cost every remaining file the same wait: stop here.
                log.warn("could not export {path} of kernel {kernel} to S3 ({error}); not "
                         "exporting the other files of this run", path=path,
                         kernel=kernel.kernel_id, error=e)
                break
            exported.append(f"s3://{self.bucket}/{key}")
        if len(run.files) > self.max_files:
            log.warn("kernel {kernel} changed {n} files; exported the first {m}",
                     kernel=kernel.kernel_id, n=len(run.files), m=self.max_files)
        run.files = exported

    def _thd_put(self, key, data):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = boto3.client(
                "s3", endpoint_url=self.endpoint_url,
                config=Config(connect_timeout=3, read_timeout=30,
                              retries={"max_attempts": 2, "mode": "standard"}))
        client.put_object(Bucket=self.bucket, Key=key, Body=data)


def object_key(prefix, path):
    """`prefix/path` when `path` (the daemon's word, so anything) is a normalised
    relative path that stays under the prefix, else None."""
    if not isinstance(path, str) or not path or "\x00" in path or path.startswith("/"):
        return None
    if any(part in ("", ".", "..") for part in path.split("/")):
        return None
    return f"{prefix}/{path}"
