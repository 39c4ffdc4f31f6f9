"""Evidence: the images behind every hit, kept beside the index.

    crops/<sha[:2]>/<image_sha256>.png|jpg    the exact crop sent to the captioner (content-addressed:
                                              a logo repeated 1,000 times is stored once)
    pages/<file_sha256>/<page>.webp           a render of the whole page for viewing
    pages/<file_sha256>/<page>.thumb.webp     its thumbnail, for result lists

Payload keys `image_uri` and `page_image_uri` hold these paths, relative to the image root (an absolute URL
when an image store publishes one). An image is written before any point that refers to it.
"""

from caprl_index.evidence.store import (
    ImageStore,
    LocalImageStore,
    crop_key,
    open_image_store,
    page_key,
    thumbnail_uri,
)

__all__ = ["ImageStore", "LocalImageStore", "crop_key", "open_image_store", "page_key", "thumbnail_uri"]
