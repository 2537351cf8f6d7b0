"""User media: files checked and kept (`files`), clips read with PyAV (`video`), image inputs (`images`)."""
