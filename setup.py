"""The compiled part of bayesmm: kernel.c as an extension module, built at installation (the
rest of the package's configuration is in pyproject.toml)."""

from setuptools import Extension, setup

KERNEL = Extension(
    "bayesmm.inference._kernel",
    sources=["bayesmm/inference/kernel_module.c"],
    depends=["bayesmm/inference/kernel.c", "bayesmm/inference/kernel_fields.h", "bayesmm/inference/engine.c",
             "bayesmm/inference/engine_fields.h"],
    # Strict IEEE arithmetic: no fused multiply-adds, so every machine computes the same bits.
    extra_compile_args=["-std=gnu99", "-ffp-contract=off", "-fno-fast-math"],
    libraries=["m"],
    # Where no compiler works, bayesmm installs without it and samples such models through
    # PyTensor's graph (and says so once).
    optional=True,
)

setup(ext_modules=[KERNEL])
