// Connections to other processes, and the references that cross them
// (docs/out_of_process.md).
//
// Threads: a Connection and every Cap'n Proto object live on the I/O thread
// (io_thread.h). What apartment threads hold is thread-safe: a Token (a
// reference on its way between an apartment and the wire), a RemoteObject
// (an imported capability, named by its connection and a number), PeerInfo
// (what is known of the process at the other end).
//
// A connection's states:
//   connected --(socket closed, peer died, or protocol error)--> dead
//   dead: every call that was in flight fails with RPC_E_SERVER_DIED, every
//   later call with RPC_E_DISCONNECTED (each explained: the peer's pid,
//   executable, exit status when this process started it); the
//   capabilities it exported to the peer are dropped at once (so a client
//   that dies releases its references).
#ifndef APARTMENTS_SRC_REMOTE_CONNECTION_H_
#define APARTMENTS_SRC_REMOTE_CONNECTION_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apartments/clock.h"
#include "apartments/proxy.h"
#include "apartments/win32_com.h"

namespace apartments::internal {

// What is known of the process at the other end of a connection. Immutable
// after creation except where said.
struct PeerInfo {
  std::uint64_t connection_id = 0;
  pid_t pid = 0;
  uid_t uid = 0;
  std::string executable;  // /proc/<pid>/exe when the connection was made.
  bool started_by_us = false;  // We launched it (so we can read its exit status).
  // "the server process" or "the client process", for explanations.
  std::string role;

  std::atomic<bool> dead{false};
  // Sets dead and the time (first call wins). Any thread.
  void MarkDead() noexcept;
  // "process 1234 (/usr/bin/server)".
  std::string Describe() const;
  // How the process ended, for an explanation: "it was killed by signal 9
  // (SIGKILL)", "it exited with status 3", or what is known. Waits up to a
  // short bound for a child of ours to be reaped. Any thread.
  std::string DescribeEnd();
  Clock::TimePoint died_at() const;

 private:
  mutable std::mutex mu_;
  Clock::TimePoint died_at_{};    // Guarded by mu_.
  // Held across DescribeEnd's reaping, so that of two threads asking, the
  // second reads what the first reaped rather than "no such child".
  std::mutex end_mu_;
  std::string end_text_;          // Guarded by end_mu_; cached once known.
};

// A COM object of this process made reachable from others: its GIT cookie
// (registered in the object's apartment, so any thread gets it back as the
// object or a proxy). The last reference revokes it, on a courier.
struct GitEntry {
  explicit GitEntry(DWORD cookie) noexcept : cookie(cookie) {}
  GitEntry(const GitEntry&) = delete;
  GitEntry& operator=(const GitEntry&) = delete;
  ~GitEntry();
  // Revokes it now, on the calling thread (the registration's end in its own
  // apartment, which releases the object there at once, as Windows does);
  // later uses fail with CO_E_OBJNOTCONNECTED. At most once.
  void RevokeNow();
  const DWORD cookie;

 private:
  std::atomic<bool> revoked_{false};
};

// Registers `object` in the GIT from the calling thread's apartment.
HRESULT MakeGitEntry(IUnknown* object, std::shared_ptr<GitEntry>* out);
// The object of `entry` as the calling thread's apartment may use it.
HRESULT GetFromGit(const GitEntry& entry, REFIID iid, void** ppv);

// A capability imported on a connection: number `id` in that connection's
// import table (on the I/O thread). The last reference drops it there, which
// tells the peer to release its object.
struct RemoteObject {
  RemoteObject(std::shared_ptr<PeerInfo> peer, std::uint64_t id) noexcept
      : peer(std::move(peer)), id(id) {}
  RemoteObject(const RemoteObject&) = delete;
  RemoteObject& operator=(const RemoteObject&) = delete;
  ~RemoteObject();
  const std::shared_ptr<PeerInfo> peer;
  const std::uint64_t id;
};

// An interface pointer between an apartment and the wire.
struct Token {
  std::shared_ptr<GitEntry> local;      // An object of this process, or
  std::shared_ptr<RemoteObject> remote;  // one of another process, or neither (null).
  IID iid{};
};

// Makes a token of `object` on the calling thread (its apartment): a remote
// proxy gives its RemoteObject, anything else is registered in the GIT.
HRESULT MakeToken(IUnknown* object, REFIID iid, Token* token);
// Turns a token back into an interface pointer on the calling thread: the
// object, an in-process proxy, or a remote proxy. *out is null for a null
// token.
HRESULT MaterializeToken(const Token& token, IUnknown** out);
// Both, for a whole wire message (which keeps its own references: its
// owner clears it on this thread).
HRESULT TokensFromWire(const WireMessage& message, std::vector<Token>* tokens);
void WireFromTokens(const std::vector<Token>& tokens, WireMessage* message);

// One outgoing call, shared by the caller (waiting) and the I/O thread.
struct OutgoingCall {
  // In.
  bool query = false;  // queryInterface rather than call.
  IID iid{};
  WORD method = 0;
  std::vector<unsigned char> args;
  std::vector<Token> caps;
  // Out, written on the I/O thread before `done` is signaled.
  HANDLE done = nullptr;
  bool delivered = false;  // The server process answered.
  HRESULT result = E_UNEXPECTED;
  std::vector<unsigned char> outs;
  std::vector<Token> out_caps;
  std::string explanation;
  bool server_died = false;  // The connection ended while the call was out.
};

// Sends `call` on the I/O thread (posts it there) through `target`; signals
// call->done when it has ended one way or another. Any thread.
void SendCall(const std::shared_ptr<RemoteObject>& target, std::shared_ptr<OutgoingCall> call);

// Makes a connection on the I/O thread from the connected socket `fd`
// (owned from here on) to a server, and its bootstrap capability (the class
// object). Waits for the I/O thread (not for the peer). Any thread.
HRESULT ConnectToServer(int fd, std::shared_ptr<PeerInfo> peer,
                        std::shared_ptr<RemoteObject>* bootstrap);

// Serves a connection accepted from a client on `fd` (I/O thread), whose
// bootstrap capability is `object`.
void ServeClientConnection(int fd, std::shared_ptr<PeerInfo> peer,
                           std::shared_ptr<GitEntry> object);

// Fills `peer` from the socket's credentials (SO_PEERCRED) and /proc.
// Returns false when they cannot be read.
bool ReadPeer(int fd, PeerInfo* peer);

// The number of connections alive, for tests. I/O thread round trip.
std::size_t LiveConnectionsForTesting();

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_REMOTE_CONNECTION_H_
