# Sourced by results/auto/run.sh and results/auto-heavy-shift/run.sh: `simulate OUT NAME REGIME FRACTIONS` writes
# OUT/NAME-P<P>-s<seed>.json for P = 16, 100, 1,000 and seeds 0-4: auto and the DBW-style rule against static b = 0
# and FRACTIONS (a Python tuple) of P, distinct and below P, in `backup` mode, 450 steps, compute 0.05 s, 10 MiB over
# a 10 Gbit/s, 50 us ring, B_noise = 2,048 examples, B = 32 per worker.
simulate() {
  local out=$1 name=$2 regime=$3 fractions=$4 py=${PYTHON:-python} p bs seed
  for p in 16 100 1000; do
    bs=$($py -c "print(','.join(str(b) for b in sorted({0, *(max(1, round(f * $p)) for f in $fractions)})))")
    for seed in 0 1 2 3 4; do
      $py -m backupsgd simulate --workers "$p" --backups "auto,auto-dbw,$bs" --modes backup \
        --straggler "$regime" --steps 450 --seed "$seed" --compute-s 0.05 \
        --noise-scale 2048 --batch-size 32 --json "$out/$name-P$p-s$seed.json" > /dev/null
    done
  done
}
