# Written by build.py into each release artifact; this copy is for running from source.
VERSION = "0.0.0-dev"
VARIANT = "base"
