// Fuzz target: the torch.save checkpoint reader. Any input must either load or raise InputError. Each input is
// tried twice: as an archive (LibTorch's zip reader, then data.pkl and its storages), and as a bare data.pkl with
// zero-filled storages, because the zip's CRCs would otherwise stop most mutations before the unpickler sees them.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/pickle.h"
#include "core/pytorch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    revkit::read_pytorch_checkpoint(data, size, "fuzz.pt");
  } catch (const revkit::InputError&) {
  }

  revkit::UnpickleOptions options;
  options.file = "fuzz.pkl";
  options.load_storage = [](const std::string&, c10::ScalarType dtype, int64_t numel) {
    if (numel > (1 << 12)) throw revkit::InputError("fuzz.pkl", "storage larger than the fuzzer serves");
    return at::zeros({numel * static_cast<int64_t>(c10::elementSize(dtype))}, at::kByte);
  };
  try {
    const revkit::PickleDocument doc = revkit::unpickle(data, size, options);
    revkit::checkpoint_from_pickle(doc.root(), "fuzz.pkl");
  } catch (const revkit::InputError&) {
  }
  return 0;
}
