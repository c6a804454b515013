// swift-tools-version:6.0
import PackageDescription

// Import direction (see docs/architecture in README): Tensors <- Kernels/Checkpoints <- GPT2 <- Optimization/Training/Generation <- GPT2Kit
// <- GPT2KitCLI (the commands) <- gpt2kit, gpt2kit-mpi
let package = Package(
    name: "GPT2Kit",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "GPT2Kit", targets: ["GPT2Kit"]),
        .executable(name: "gpt2kit", targets: ["gpt2kit"]),
        // Runs libhdf5 in a separate process for Checkpoints' KerasHDF5 (found next to the running executable).
        .executable(name: "gpt2kit-hdf5", targets: ["gpt2kit-hdf5"]),
        // The same commands under Open MPI (`mpirun -np N gpt2kit-mpi finetune …`); the only product that links libmpi.
        .executable(name: "gpt2kit-mpi", targets: ["gpt2kit-mpi"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation --target GPT2Kit` (the API reference; scripts/docs.sh).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),

        .target(name: "Tensors"),
        // SIMD kernels for decoding with f16 and Q8_0 weights (run-time CPU dispatch; see its header).
        .target(name: "CDecode", dependencies: ["CBLAS"]),
        // SIMD training kernels (GELU, LayerNorm, dropout, softmax pieces, LoRA's thin products), run-time CPU dispatch;
        // also has OpenBLAS's idle workers sleep at once (see CKernels.c).
        .target(name: "CKernels"),
        .target(name: "Kernels", dependencies: ["Tensors", "CBLAS", "CDecode", "CKernels"]),
        // Linux calls Swift's Glibc module does not import (memfd_create, pipe2, closefrom for posix_spawn).
        .target(name: "CPosix"),
        .target(name: "Checkpoints", dependencies: ["Tensors", "CHDF5", "CZlib", "CPosix"]),
        .target(name: "Tokenization", dependencies: ["Tensors"]),
        .target(name: "GPT2", dependencies: ["Tensors", "Kernels"]),
        .target(name: "Optimization", dependencies: ["Tensors", "Kernels"]),
        .target(name: "Training", dependencies: ["GPT2", "Optimization", "Tensors"]),
        .target(name: "Generation", dependencies: ["GPT2", "Kernels", "Tensors", "Tokenization"]),
        .target(name: "GPT2Kit", dependencies: [
            "Tensors", "Checkpoints", "Tokenization", "GPT2", "Optimization", "Training", "Generation",
        ]),
        .target(name: "GPT2KitCLI", dependencies: [
            "GPT2Kit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // gpt2kit-hdf5 is a dependency so that building gpt2kit builds the helper next to it.
        .executableTarget(name: "gpt2kit", dependencies: ["GPT2KitCLI", "gpt2kit-hdf5"]),
        .executableTarget(name: "gpt2kit-mpi", dependencies: [
            "GPT2KitCLI", "GPT2Kit", "CMPI", "gpt2kit-hdf5",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "gpt2kit-hdf5", dependencies: ["Checkpoints"]),

        .executableTarget(name: "checkpoint-benchmark", dependencies: ["Checkpoints", "Tensors", "gpt2kit-hdf5"],
                          path: "Benchmarks/CheckpointBenchmark"),
        .executableTarget(name: "training-benchmark", dependencies: ["GPT2", "Optimization", "Training", "Kernels", "Tensors"],
                          path: "Benchmarks/TrainingBenchmark"),
        .executableTarget(name: "generation-benchmark", dependencies: ["GPT2", "Generation", "Kernels", "GPT2Kit"],
                          path: "Benchmarks/GenerationBenchmark"),

        // The notebook through the library facade. Without package access it sees exactly what a user's
        // `import GPT2Kit` sees: the public API, none of the package-internal declarations.
        .executableTarget(name: "notebook-example", dependencies: ["GPT2Kit"], path: "Examples/Notebook", packageAccess: false),

        .target(name: "TestSupport", dependencies: ["Tensors"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"]),
        // The HDF5 tests run the helper, found next to the test runner.
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "TestSupport", "gpt2kit-hdf5"]),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization", "TestSupport"]),
        .testTarget(name: "GPT2Tests", dependencies: ["GPT2Kit", "TestSupport"]),
        .testTarget(name: "GenerationTests", dependencies: ["GPT2Kit", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["GPT2Kit", "GPT2KitCLI", "TestSupport", "gpt2kit-hdf5", "notebook-example"]),
    ]
)
