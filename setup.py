"""Installs tfwsar. Pins and the reason for each are in BUILD.md."""

import setuptools

setuptools.setup(
    name="tfwsar",
    version="0.1.0",
    description=(
        "Weakly supervised action recognition and temporal action localization in "
        "TensorFlow/Keras (TSRNet, convex clustering)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["tfwsar", "tfwsar.*"]),
    package_data={"tfwsar": ["resources/SOURCES.md", "resources/*/*.txt", "resources/*/*.csv", "resources/*/*/*.txt"]},
    python_requires=">=3.9,<3.13",
    install_requires=[
        "tensorflow==2.17.1",
        "keras==3.15.1",
        "tensorflow-io==0.37.1",
        "numpy>=1.23,<2",
        "pandas>=2.0,<2.3",
        "absl-py>=1.0",
        "tqdm>=4.60",
    ],
    extras_require={
        "test": ["pytest>=7"],
        "video": ["av>=11", "opencv-python-headless>=4.8,<4.12"],
    },
)
