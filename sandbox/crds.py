"""`python -m sandbox.crds [DIR]`: write the official CRDs the emulator validates with.

A module of its own, outside `sandbox.kube`, so that running it does not import the package
that holds it first (see `sandbox.kube.crds` for where the CRDs come from).
"""

from sandbox.kube.crds import main

if __name__ == "__main__":
    raise SystemExit(main())
