#!/bin/bash
# Runs made at 5588af3 were fenced (backupsgd/evaluation_fence.py) but did not yet say so; b4522e5 writes config.json's
# `evaluation_fence`, which `backupsgd report --training-time` charges evaluations by. This adds it to a run.sh
# output's runs of that code (results/README section 10, "A fence after each evaluation"). Usage: mark_fenced.sh OUT
for f in "$1"/*/s*/*/config.json; do
  python3 -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['evaluation_fence']=True; open(p,'w').write(json.dumps(c, indent=2))" "$f"
done
