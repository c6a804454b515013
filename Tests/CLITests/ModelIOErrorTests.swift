import Foundation
import Testing
import TestSupport
@testable import GPT2Kit

@Suite struct ModelIOErrorTests {
    @Test func configThatDisagreesWithTheWeightsNamesBothFiles() throws {
        let weights = Fixtures.path("micro-gpt2/model.safetensors")
        let config = Fixtures.path("tiny-gpt2/config.json")
        let location = try ModelLocation(path: weights, configPath: config)
        do {
            _ = try ModelIO.loadParameters(location)
            Issue.record("micro weights loaded against the tiny config")
        } catch let error as ModelLoadError {
            let message = "\(error)"
            #expect(message.contains(weights), "\(message)")
            #expect(message.contains(config), "\(message)")
            #expect(message.contains("transformer.wte.weight"), "\(message)")
        }
    }

    @Test func hugeConfigsAgainstMicroWeightsFailWithoutAllocating() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let weights = Fixtures.path("micro-gpt2/model.safetensors")
        for (json, isConfigError) in [(#"{"n_embd": 3000000000, "n_head": 1, "vocab_size": 2000000000}"#, true),
                                      (#"{"n_embd": 30000, "n_head": 1, "n_layer": 100}"#, true),
                                      (#"{"n_layer": 1000000000}"#, true),
                                      (#"{"n_embd": 4096, "n_head": 1, "n_layer": 48}"#, false)] {
            let config = folder + "/config.json"
            try Data(json.utf8).write(to: URL(fileURLWithPath: config))
            do {
                _ = try ModelIO.loadParameters(try ModelLocation(path: weights, configPath: config))
                Issue.record("\(json) loaded")
            } catch {
                if isConfigError { #expect(error is ConfigError, "\(error)") } else { #expect(error is ModelLoadError, "\(error)") }
            }
        }
    }

    @Test func missingPathsAndFoldersWithoutWeightsAreNamed() throws {
        #expect(throws: ModelLocationError.notFound(path: "/nonexistent/gpt2")) { try ModelLocation(path: "/nonexistent/gpt2") }
        let empty = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(throws: ModelLocationError.noWeights(folder: empty)) { try ModelLocation(path: empty) }
        let lonely = empty + "/weights.safetensors"
        try FileManager.default.copyItem(atPath: Fixtures.path("micro-gpt2/model.safetensors"), toPath: lonely)
        let location = try ModelLocation(path: lonely)
        #expect(throws: ModelLocationError.noConfig(weights: lonely)) { try ModelIO.readConfig(location) }
        #expect(throws: ModelLocationError.noTokenizer(folder: empty)) { try ModelIO.loadTokenizer(folder: empty) }
    }

    @Test func folderResolutionPrefersSafetensorsThenBinThenH5() throws {
        let location = try ModelLocation(path: Fixtures.path("micro-gpt2"))
        #expect(location.weightsKind == .safetensors)
        #expect(location.availableWeights.map { ($0 as NSString).lastPathComponent } == ["model.safetensors", "pytorch_model.bin", "tf_model.h5"])
        #expect(location.configPath == Fixtures.path("micro-gpt2") + "/config.json")
    }
}
