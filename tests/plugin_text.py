"""Source text shared by the tests' plugin methods: the imports, an empty Config, a helper that
takes the first ``n`` real images of each class, and a base class."""

import textwrap

PLUGIN_PRELUDE = textwrap.dedent('''
    from dataclasses import dataclass
    import torch
    import benchsuite

    @dataclass(frozen=True)
    class Cfg:
        pass

    def per_class(real, n):
        imgs, labels = [], []
        for c, idx in enumerate(real.class_indices()):
            imgs.append(real.images[idx[:n]])
            labels.append(torch.full((n,), c))
        return torch.cat(imgs), torch.cat(labels)

    class Base(benchsuite.Method):
        Config = Cfg
''')
