"""The one compiled part: a native fast path for well-formed requests (server/otlp2parquet/convert/_fastpb.c).

Everything else is declared in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("otlp2parquet.convert._fastpb", ["server/otlp2parquet/convert/_fastpb.c"],
                             extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"])])
