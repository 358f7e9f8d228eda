"""The engine (DESIGN.md layer 4): the kernel IR (`kernel`), the scheduler and fusion
(`schedule`), the realize loop (`realize`) and step capture (`capture`).

The engine alone imports both the scheduler and the devices. The kernel IR imports only
leaf modules, so the backends below can run its kernels without importing the rest; this
file imports nothing, so importing `smolgrad.engine.kernel` stays cheap and acyclic.
"""
