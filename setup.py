"""The compiled parts: a native fast path for well-formed requests (server/otlp2parquet/convert/_fastpb.c), and
Parquet encoding with a row group's columns on several threads (server/otlp2parquet/writer/_encode.cpp), built
against the Arrow C++ libraries inside the pyarrow wheel (so the build needs pyarrow, see pyproject.toml).

Everything else is declared in pyproject.toml.
"""

import pyarrow
from setuptools import Extension, setup

# Unversioned libarrow.so and libparquet.so next to the wheel's versioned ones, so that -larrow -lparquet link.
pyarrow.create_library_symlinks()

setup(ext_modules=[
    Extension("otlp2parquet.convert._fastpb", ["server/otlp2parquet/convert/_fastpb.c"],
              extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"]),
    # At run time the Arrow libraries are found already loaded (writer/files.py imports pyarrow.parquet first),
    # or next to the package in site-packages.
    Extension("otlp2parquet.writer._encode", ["server/otlp2parquet/writer/_encode.cpp"], language="c++",
              include_dirs=[pyarrow.get_include()], library_dirs=pyarrow.get_library_dirs(),
              libraries=["arrow", "parquet"], runtime_library_dirs=["$ORIGIN/../../pyarrow"],
              extra_compile_args=["-O2", "-std=c++20", "-Wall", "-Wextra"]),
])
