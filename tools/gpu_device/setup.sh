# device set-up: wheels into /tmp/site, cuFFT shim next to astra (RUNPATH $ORIGIN/../nvidia/cufft/lib)
set -e
if [ ! -f /tmp/site/.ok ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export CUFFT13=$(find / -name "libcufft.so.12*" -not -path "/proc/*" 2>/dev/null | head -1)
  echo "cufft13: $CUFFT13"
  mkdir -p /tmp/site/nvidia/cufft/lib
  gcc -shared -fPIC -O2 tools/gpu_device/cufft_shim.c -o /tmp/site/nvidia/cufft/lib/libcufft.so.11 \
      -Wl,--version-script=tools/gpu_device/cufft.map -Wl,-soname,libcufft.so.11 -ldl
  echo "export CUFFT13=$CUFFT13" > /tmp/site/env.sh
  touch /tmp/site/.ok
fi
source /tmp/site/env.sh
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import astra, torch, deepinv; print('astra', astra.__version__, 'use_cuda', astra.use_cuda(), 'torch', torch.__version__, torch.cuda.get_device_name())"
