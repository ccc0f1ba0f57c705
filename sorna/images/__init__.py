"""Kernel images: a Debian base built from scratch, and one image per language."""

from sorna.images.build import (BASE_IMAGE, ImageBuildError, available_langs,
                                build_images)
from sorna.images.mirror import MirrorNotFound, apt_proxy_env, find_debian_mirror

__all__ = ["BASE_IMAGE", "ImageBuildError", "MirrorNotFound", "apt_proxy_env",
           "available_langs", "build_images", "find_debian_mirror"]
