// Compiles the precompiled LibTorch header once; every revkit target reuses it.
