import sys

from bench.hosts.cli import main

sys.exit(main(sys.argv[1:]))
