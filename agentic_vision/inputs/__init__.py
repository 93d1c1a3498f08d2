"""What the user gives (paths, folders, URLs, PDFs, bytes, PIL images), made into
the files of the sandbox's working directory and the images the model sees."""

from .images import DEFAULT_MAX_PIXELS, PreparedImage, prepare_image

__all__ = ["DEFAULT_MAX_PIXELS", "PreparedImage", "prepare_image"]
