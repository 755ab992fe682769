import sys

from bench.hosts.scenario import main

sys.exit(main(sys.argv[1:]))
