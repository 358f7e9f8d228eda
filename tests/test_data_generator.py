

def test_dataloader_takes_a_smolgrad_generator():
    import numpy as np

    import smolgrad as sg
    from smolgrad.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(np.arange(20, dtype=np.float32))
    order = lambda seed: [int(x) for (b,) in DataLoader(ds, batch_size=5, shuffle=True, generator=sg.Generator().manual_seed(seed)) for x in b.numpy()]
    assert order(3) == order(3) and order(3) != order(4) and sorted(order(3)) == list(range(20))
