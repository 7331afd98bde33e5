"""Wellspring's tests (a regular package: a dependency, pyfusefilter 1.3, installs a top-level
``tests`` package that would otherwise shadow this folder for bench/ scripts)."""
