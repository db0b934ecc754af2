"""Everything but the compiled crop kernel is declared in setup.cfg.

The kernel is optional: where it cannot be built (no C compiler, no Python headers) the rest is installed without
it (install.sh warns), and the crops are made with tensor operations (see vot_lorat/crop.py)."""
import sys

from setuptools import Extension, setup

# no fused multiply-adds: the kernel's taps and blends must round as crop.py's numpy arithmetic does
FLAGS = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"]

setup(ext_modules=[Extension("vot_lorat._crop_kernel", ["vot_lorat/csrc/crop_kernel.c"], extra_compile_args=FLAGS,
                             optional=True)])
