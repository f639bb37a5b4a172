#!/bin/bash
# one-off device check (not committed)
O=$OUT/a; mkdir -p $O
cat > /tmp/exp-a.txt <<'X'
--ops linear_attn,softmax_attn,long_conv,short_long_conv --seq 1,37,130,1000 --batch 2 --heads 2 --dim 8 --pass bwd,fwdbwd -o small.csv
--ops linear_attn --seq 100,3000 --batch 1 --heads 1 --dk 128 --dv 256 --pass bwd -o head-small.csv
--ops mega --seq 37,300,1500 --batch 2 --dim 64 --z 64 --v 128 -o mega-small.csv
--seq 1k,64k --ops linear_attn,long_conv,short_long_conv,softmax_attn --pass fwd,fwdbwd -o lm-train.csv
--seq 1k,64k --ops linear_attn --variants chunked --heads 1 --dk 128 --dv 2048 --pass fwd,fwdbwd -o head-train.csv
--seq 1k,8k,64k --ops mega -o mega.csv
X
SHOW_COLS=variant,seq,pass,median_ms,floor_ratio,max_rel_err,status,note LINE_TIMEOUT=120 timeout 360 bash profiles/run_experiments.sh $O 5901750 /tmp/exp-a.txt > $O/driver.log 2>&1
tail -c 6000 $O/driver.log
tar czf $OUT/a.tgz -C $OUT a && rm -rf $O
