import Dispatch
import Foundation

/// Ctrl-C (SIGINT) for a command that can stop cleanly between steps: the first signal sets a flag the command
/// hands to the library's run loop as its `shouldStop` (and calls `onFirst`, to say so at once); a second one
/// ends the process immediately with status 130. What an unfinished save leaves behind is temporary files that
/// the next run in that folder removes.
///
/// The signal is taken by a dispatch source on a queue of its own (the disposition is set to ignore, as dispatch
/// sources need), so the handler runs as ordinary code, not in signal context. `stop()` restores the default.
final class InterruptSignal: @unchecked Sendable {
    /// The exit status of a command ended by SIGINT (128 + 2, as shells report it).
    static let exitStatus: Int32 = 130

    private let lock = NSLock()
    private var received = false
    private var source: DispatchSourceSignal?

    /// Whether SIGINT has arrived since `install`.
    var isSet: Bool {
        lock.lock(); defer { lock.unlock() }
        return received
    }

    /// Starts taking SIGINT; `onFirst` runs (on the handler's queue) when the first one arrives.
    static func install(onFirst: @escaping @Sendable () -> Void) -> InterruptSignal {
        let interrupt = InterruptSignal()
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue(label: "gpt2kit.interrupt"))
        source.setEventHandler {
            // Signals that arrive together are merged into one event; `data` counts them.
            let count = Int(source.data)
            let wasSet = interrupt.setReceived()
            if wasSet || count > 1 {
                let message: StaticString = "\ninterrupted again: stopping at once\n"
                _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
                _exit(exitStatus)
            }
            onFirst()
        }
        source.resume()
        interrupt.source = source
        return interrupt
    }

    /// Sets the flag; returns whether it was set already.
    private func setReceived() -> Bool {
        lock.lock(); defer { lock.unlock() }
        defer { received = true }
        return received
    }

    /// Stops taking SIGINT (its default action, ending the process, applies again).
    func stop() {
        source?.cancel()
        source = nil
        signal(SIGINT, SIG_DFL)
    }
}
