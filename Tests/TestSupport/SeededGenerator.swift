import Tensors

/// A tiny seeded generator so random tests are reproducible and cannot flake: the library's SplitMix64.
public typealias SeededGenerator = SplitMix64
