"""In-process tests run on one host device whatever their order: otherwise the first command
line called in-process before any other JAX computation (`bb_jax.devices.use_host_devices`)
would choose the device count of the whole pytest process. Subprocess tests get the real
default (every core), unless they set it themselves."""

import jax

from bb_jax import devices

if not devices.user_set_count():
    jax.config.update("jax_num_cpu_devices", 1)
