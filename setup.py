"""eta-ctr: End-to-end Target Attention CTR pipeline on TFX."""

import setuptools

setuptools.setup(
    name="eta-ctr",
    version="0.1.0",
    description="TFX pipeline for CTR prediction over long user-behaviour sequences (ETA)",
    python_requires=">=3.9,<3.11",
    # The folders read like the data flow; each is a top-level package, as in
    # the TFX templates. kubeflow/ holds deployment assets, not Python: a
    # `kubeflow` package would shadow the Kubeflow SDKs' namespace.
    packages=setuptools.find_packages(
        include=["eta_ctr*", "components*", "models*", "pipeline*", "serving*",
                 "benchmarks*"]),
    # The fused retrieval kernel is compiled from source on first use.
    package_data={"models.layers.kernels": ["*.cc"], "benchmarks": ["*.c"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.*",
        "apache-beam[gcp]==2.59.0",
        "tensorflow-recommenders==0.7.3",
        "kfp>=2.5,<2.9",
        "matplotlib",
        "pandas",
        "pyarrow",
        "tornado",
    ],
    extras_require={"test": ["pytest", "pytest-xdist"]},
    entry_points={"console_scripts": ["eta=eta_ctr.cli:main"]},
)
