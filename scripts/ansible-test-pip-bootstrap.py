"""Stand-in for ansible-test's downloaded get-pip script (its host is unreachable here).

ansible-test runs this file with get-pip's arguments (`--disable-pip-version-check
pip==X --no-setuptools --no-wheel`) inside each fresh sanity venv. We bring pip in from the interpreter's own `ensurepip`,
then let that pip run the same arguments with the machine's CA bundle, which
ansible-test's reduced environment (PIP_CONFIG_FILE=/dev/null) would otherwise lose.
"""

import os
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"],
                      stdout=subprocess.DEVNULL)
env = dict(os.environ)
for bundle in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
    if os.path.exists(bundle):
        env.setdefault("PIP_CERT", bundle)
        env.setdefault("SSL_CERT_FILE", bundle)
        break
# get-pip's own flags say what not to install; pip itself does not know them.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "-q"] + args, env=env))
