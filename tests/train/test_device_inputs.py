"""The streamed pipeline's pixel scaling on the device is the memory pipeline's on the host, bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.train.step import PIXEL_VALUES, device_inputs


def test_every_uint8_pixel_scales_to_the_hosts_float32_bits():
    pixels = np.arange(256, dtype=np.uint8)
    host = pixels.astype(np.float32) / 255.0  # as jaxdl.data.loader.to_arrays computes it
    for run in (jax.jit(device_inputs), device_inputs):
        got = np.asarray(run(jnp.asarray(pixels.reshape(2, 8, 16))))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.reshape(-1).view(np.uint32), host.view(np.uint32))
    np.testing.assert_array_equal(PIXEL_VALUES.view(np.uint32), host.view(np.uint32))


def test_other_dtypes_are_cast():
    np.testing.assert_array_equal(np.asarray(device_inputs(jnp.asarray([1, 2], jnp.int32))), [1.0, 2.0])
