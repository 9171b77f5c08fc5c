module keyward/bench/loadgen

go 1.19
