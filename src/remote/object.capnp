# The wire protocol of apartments across processes (docs/out_of_process.md).
#
# One capability per exported COM object (its identity, all its interfaces):
# a call names the interface and the method's vtable slot, and carries the
# arguments serialized by type (apartments/wire.h) with the interface
# pointers among them as capabilities. Cap'n Proto's reference counting of
# capabilities is COM's remote reference counting: the server holds the
# object while some client holds the capability, and a connection that ends
# (its client process died) drops every capability it held at once.
@0xa3ed4e5bab42ee88;

interface Object {
  # Calls method `method` (its vtable slot; QueryInterface, AddRef and Release
  # are 0-2) of interface `iid` (16 bytes, GUID layout) of the object, in the
  # object's apartment. `args` and `caps` are the [in] arguments; the
  # interface pointers of `caps` are described by `capIids` (the IID each was
  # written as). The reply carries the method's HRESULT (or the failure of
  # the call inside the server process), the [out] arguments, and, when the
  # call failed there, the server's explanation.
  call @0 (iid :Data, method :UInt16, args :Data, caps :List(Object), capIids :List(Data))
      -> (result :Int32, outs :Data, caps :List(Object), capIids :List(Data), explanation :Text);

  # QueryInterface: S_OK when the object has interface `iid` and this server
  # process can serve calls on it (its proxy recipe is declared for other
  # processes); E_NOINTERFACE otherwise.
  queryInterface @1 (iid :Data) -> (result :Int32, explanation :Text);
}
