"""Build the optional C extension; everything else is declared in setup.cfg."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # Multi-buffer SHA-256 (taskgraph_images/_hashing/_sha256mb.c). Optional: where it
        # does not build, the context hash uses hashlib, with the same results.
        Extension(
            "taskgraph_images._hashing._sha256mb",
            sources=["taskgraph_images/_hashing/_sha256mb.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ],
)
