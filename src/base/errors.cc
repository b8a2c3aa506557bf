// The error tables: a name and Windows' message for every code that
// apartments/win32_errors.h defines, the lookups in apartments/errors.h, and
// FormatMessageA/W and LocalFree over the same tables.
#include "apartments/errors.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <span>
#include <string>

#include "apartments/win32_errors.h"
#include "apartments/win32_types.h"

// The calling thread's last error, defined with the rest of the per-thread
// state in src/base. Declared here rather than through apartments/
// win32_kernel.h so that the error layer does not depend on the kernel API.
extern "C" void WINAPI SetLastError(DWORD dwErrCode);

namespace apartments {
namespace internal {
namespace {

// Each entry names its code once: the value is the header's macro and the name
// is that macro's spelling, so a table cannot disagree with win32_errors.h.
#define APARTMENTS_HRESULT_ENTRY(code, message) \
  { code, #code, message }
#define APARTMENTS_WIN32_ENTRY(code, message) \
  { code, #code, "HRESULT_FROM_WIN32(" #code ")", message }

// Messages are the text of Microsoft's "COM Error Codes" pages (winerror.h),
// verbatim, including the ones that end without a full stop.
constexpr HResultEntry kHResultTable[] = {
    // Success codes. Windows has no system message for S_OK or S_FALSE
    // (FormatMessage reads 0 and 1 as Win32 errors); these say what they mean.
    APARTMENTS_HRESULT_ENTRY(S_OK, "The operation completed successfully."),
    APARTMENTS_HRESULT_ENTRY(S_FALSE, "The operation completed successfully and returned false."),

    // Generic.
    APARTMENTS_HRESULT_ENTRY(E_UNEXPECTED, "Catastrophic failure"),
    APARTMENTS_HRESULT_ENTRY(E_NOTIMPL, "Not implemented"),
    APARTMENTS_HRESULT_ENTRY(E_OUTOFMEMORY, "Ran out of memory"),
    APARTMENTS_HRESULT_ENTRY(E_INVALIDARG, "One or more arguments are invalid"),
    APARTMENTS_HRESULT_ENTRY(E_NOINTERFACE, "No such interface supported"),
    APARTMENTS_HRESULT_ENTRY(E_POINTER, "Invalid pointer"),
    APARTMENTS_HRESULT_ENTRY(E_HANDLE, "Invalid handle"),
    APARTMENTS_HRESULT_ENTRY(E_ABORT, "Operation aborted"),
    APARTMENTS_HRESULT_ENTRY(E_FAIL, "Unspecified error"),
    APARTMENTS_HRESULT_ENTRY(E_ACCESSDENIED, "General access denied error"),
    APARTMENTS_HRESULT_ENTRY(E_PENDING,
                             "The data necessary to complete this operation is not yet available."),
    APARTMENTS_HRESULT_ENTRY(E_BOUNDS,
                             "The operation attempted to access data outside the valid range"),
    APARTMENTS_HRESULT_ENTRY(E_CHANGED_STATE,
                             "A concurrent or interleaved operation changed the state of the "
                             "object, invalidating this operation."),
    APARTMENTS_HRESULT_ENTRY(E_ILLEGAL_STATE_CHANGE, "An illegal state change was requested."),
    APARTMENTS_HRESULT_ENTRY(E_ILLEGAL_METHOD_CALL, "A method was called at an unexpected time."),

    // COM initialization.
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_TLS, "Thread local storage failure"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_SHARED_ALLOCATOR, "Get shared memory allocator failure"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_MEMORY_ALLOCATOR, "Get memory allocator failure"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_CLASS_CACHE, "Unable to initialize class cache"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_RPC_CHANNEL, "Unable to initialize RPC services"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_TLS_SET_CHANNEL_CONTROL,
                             "Cannot set thread local storage channel control"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_TLS_CHANNEL_CONTROL,
                             "Could not allocate thread local storage channel control"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_UNACCEPTED_USER_ALLOCATOR,
                             "The user supplied memory allocator is unacceptable"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_SCM_MUTEX_EXISTS, "The OLE service mutex already exists"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_SCM_FILE_MAPPING_EXISTS,
                             "The OLE service file mapping already exists"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_SCM_MAP_VIEW_OF_FILE,
                             "Unable to map view of file for OLE service"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_SCM_EXEC_FAILURE,
                             "Failure attempting to launch OLE service"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INIT_ONLY_SINGLE_THREADED,
                             "There was an attempt to call CoInitialize a second time while "
                             "single threaded"),
    APARTMENTS_HRESULT_ENTRY(CO_E_CANT_REMOTE,
                             "A Remote activation was necessary but was not allowed"),
    APARTMENTS_HRESULT_ENTRY(CO_E_BAD_SERVER_NAME,
                             "A Remote activation was necessary but the server name provided was "
                             "invalid"),
    APARTMENTS_HRESULT_ENTRY(CO_E_WRONG_SERVER_IDENTITY,
                             "The class is configured to run as a security id different from the "
                             "caller"),
    APARTMENTS_HRESULT_ENTRY(CO_E_OLE1DDE_DISABLED,
                             "Use of Ole1 services requiring DDE windows is disabled"),
    APARTMENTS_HRESULT_ENTRY(CO_E_RUNAS_SYNTAX,
                             "A RunAs specification must be <domain name>\\<user name> or simply "
                             "<user name>."),
    APARTMENTS_HRESULT_ENTRY(CO_E_CREATEPROCESS_FAILURE,
                             "The server process could not be started. The pathname may be "
                             "incorrect."),
    APARTMENTS_HRESULT_ENTRY(CO_E_RUNAS_CREATEPROCESS_FAILURE,
                             "The server process could not be started as the configured identity. "
                             "The pathname may be incorrect or unavailable."),
    APARTMENTS_HRESULT_ENTRY(CO_E_RUNAS_LOGON_FAILURE,
                             "The server process could not be started because the configured "
                             "identity is incorrect. Check the user name and password."),
    APARTMENTS_HRESULT_ENTRY(CO_E_LAUNCH_PERMSSION_DENIED,
                             "The client is not allowed to launch this server."),
    APARTMENTS_HRESULT_ENTRY(CO_E_START_SERVICE_FAILURE,
                             "The service providing this server could not be started."),
    APARTMENTS_HRESULT_ENTRY(CO_E_REMOTE_COMMUNICATION_FAILURE,
                             "This computer was unable to communicate with the computer providing "
                             "the server."),
    APARTMENTS_HRESULT_ENTRY(CO_E_SERVER_START_TIMEOUT,
                             "The server did not respond after being launched."),
    APARTMENTS_HRESULT_ENTRY(CO_E_CLSREG_INCONSISTENT,
                             "The registration information for this server is inconsistent or "
                             "incomplete."),
    APARTMENTS_HRESULT_ENTRY(CO_E_IIDREG_INCONSISTENT,
                             "The registration information for this interface is inconsistent or "
                             "incomplete."),
    APARTMENTS_HRESULT_ENTRY(CO_E_NOT_SUPPORTED, "The operation attempted is not supported."),
    APARTMENTS_HRESULT_ENTRY(CO_E_RELOAD_DLL, "A dll must be loaded."),
    APARTMENTS_HRESULT_ENTRY(CO_E_MSI_ERROR,
                             "A Microsoft Software Installer error was encountered."),
    APARTMENTS_HRESULT_ENTRY(CO_E_ATTEMPT_TO_CREATE_OUTSIDE_CLIENT_CONTEXT,
                             "The specified activation could not occur in the client context as "
                             "specified."),
    APARTMENTS_HRESULT_ENTRY(CO_E_SERVER_PAUSED, "Activations on the server are paused."),
    APARTMENTS_HRESULT_ENTRY(CO_E_SERVER_NOT_PAUSED, "Activations on the server are not paused."),
    APARTMENTS_HRESULT_ENTRY(CO_E_CLASS_DISABLED,
                             "The component or application containing the component has been "
                             "disabled."),
    APARTMENTS_HRESULT_ENTRY(CO_E_CLRNOTAVAILABLE, "The common language runtime is not available"),
    APARTMENTS_HRESULT_ENTRY(CO_E_ASYNC_WORK_REJECTED,
                             "The thread-pool rejected the submitted asynchronous work."),
    APARTMENTS_HRESULT_ENTRY(CO_E_SERVER_INIT_TIMEOUT,
                             "The server started, but did not finish initializing in a timely "
                             "fashion."),
    APARTMENTS_HRESULT_ENTRY(CO_E_NO_SECCTX_IN_ACTIVATE,
                             "Unable to complete the call since there is no COM+ security context "
                             "inside IObjectControl.Activate."),
    APARTMENTS_HRESULT_ENTRY(CO_E_TRACKER_CONFIG, "The provided tracker configuration is invalid"),
    APARTMENTS_HRESULT_ENTRY(CO_E_THREADPOOL_CONFIG,
                             "The provided thread pool configuration is invalid"),
    APARTMENTS_HRESULT_ENTRY(CO_E_SXS_CONFIG, "The provided side-by-side configuration is invalid"),
    APARTMENTS_HRESULT_ENTRY(CO_E_MALFORMED_SPN,
                             "The server principal name (SPN) obtained during security negotiation "
                             "is malformed."),

    // RPC and call control.
    APARTMENTS_HRESULT_ENTRY(RPC_E_CALL_REJECTED, "Call was rejected by callee."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CALL_CANCELED, "Call was canceled by the message filter."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CANTPOST_INSENDCALL,
                             "The caller is dispatching an intertask SendMessage call and cannot "
                             "call out via PostMessage."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CANTCALLOUT_INASYNCCALL,
                             "The caller is dispatching an asynchronous call and cannot make an "
                             "outgoing call on behalf of this call."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CANTCALLOUT_INEXTERNALCALL,
                             "It is illegal to call out while inside message filter."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CONNECTION_TERMINATED,
                             "The connection terminated or is in a bogus state and cannot be used "
                             "any more. Other connections are still valid."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_SERVER_DIED,
                             "The callee (server [not server application]) is not available and "
                             "disappeared; all connections are invalid. The call may have "
                             "executed."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CLIENT_DIED,
                             "The caller (client) disappeared while the callee (server) was "
                             "processing a call."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_DATAPACKET,
                             "The data packet with the marshalled parameter data is incorrect."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CANTTRANSMIT_CALL,
                             "The call was not transmitted properly; the message queue was full "
                             "and was not emptied after yielding."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CLIENT_CANTMARSHAL_DATA,
                             "The client (caller) cannot marshal the parameter data - low memory, "
                             "etc."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CLIENT_CANTUNMARSHAL_DATA,
                             "The client (caller) cannot unmarshal the return data - low memory, "
                             "etc."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_SERVER_CANTMARSHAL_DATA,
                             "The server (callee) cannot marshal the return data - low memory, "
                             "etc."),
    APARTMENTS_HRESULT_ENTRY(
        RPC_E_SERVER_CANTUNMARSHAL_DATA,
        "The server (callee) cannot unmarshal the parameter data - low memory, "
        "etc."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_DATA,
                             "Received data is invalid; could be server or client data."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_PARAMETER,
                             "A particular parameter is invalid and cannot be (un)marshalled."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CANTCALLOUT_AGAIN,
                             "There is no second outgoing call on same channel in DDE "
                             "conversation."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_SERVER_DIED_DNE,
                             "The callee (server [not server application]) is not available and "
                             "disappeared; all connections are invalid. The call did not "
                             "execute."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_SYS_CALL_FAILED, "System call failed."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_OUT_OF_RESOURCES,
                             "Could not allocate some required resource (memory, events, ...)"),
    APARTMENTS_HRESULT_ENTRY(RPC_E_ATTEMPTED_MULTITHREAD,
                             "Attempted to make calls on more than one thread in single threaded "
                             "mode."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_NOT_REGISTERED,
                             "The requested interface is not registered on the server object."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_FAULT,
                             "RPC could not call the server or could not return the results of "
                             "calling the server."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_SERVERFAULT, "The server threw an exception."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CHANGED_MODE, "Cannot change thread mode after it is set."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALIDMETHOD,
                             "The method called does not exist on the server."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_DISCONNECTED,
                             "The object invoked has disconnected from its clients."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_RETRY,
                             "The object invoked chose not to process the call now. Try again "
                             "later."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_SERVERCALL_RETRYLATER,
                             "The message filter indicated that the application is busy."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_SERVERCALL_REJECTED, "The message filter rejected the call."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_CALLDATA,
                             "A call control interfaces was called with invalid data."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CANTCALLOUT_ININPUTSYNCCALL,
                             "An outgoing call cannot be made since the application is "
                             "dispatching an input-synchronous call."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_WRONG_THREAD,
                             "The application called an interface that was marshalled for a "
                             "different thread."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_THREAD_NOT_INIT,
                             "CoInitialize has not been called on the current thread."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_VERSION_MISMATCH,
                             "The version of OLE on the client and server machines does not "
                             "match."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_HEADER, "OLE received a packet with an invalid header."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_EXTENSION,
                             "OLE received a packet with an invalid extension."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_IPID,
                             "The requested object or interface does not exist."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_OBJECT, "The requested object does not exist."),
    APARTMENTS_HRESULT_ENTRY(RPC_S_CALLPENDING,
                             "OLE has sent a request and is waiting for a reply."),
    APARTMENTS_HRESULT_ENTRY(RPC_S_WAITONTIMER, "OLE is waiting before retrying a request."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_CALL_COMPLETE,
                             "Call context cannot be accessed after call completed."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_UNSECURE_CALL,
                             "Impersonate on unsecure calls is not supported."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_TOO_LATE,
                             "Security must be initialized before any interfaces are marshalled or "
                             "unmarshalled. It cannot be changed once initialized."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_NO_GOOD_SECURITY_PACKAGES,
                             "No security packages are installed on this machine or the user is "
                             "not logged on or there are no compatible security packages between "
                             "the client and server."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_ACCESS_DENIED, "Access is denied."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_REMOTE_DISABLED,
                             "Remote calls are not allowed for this process."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_OBJREF,
                             "The marshaled interface data packet (OBJREF) has an invalid or "
                             "unknown format."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_NO_CONTEXT,
                             "No context is associated with this call. This happens for some "
                             "custom marshalled calls and on the client side of the call."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_TIMEOUT,
                             "This operation returned because the timeout period expired."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_NO_SYNC, "There are no synchronize objects to wait on."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_FULLSIC_REQUIRED,
                             "Full subject issuer chain SSL principal name expected from the "
                             "server."),
    APARTMENTS_HRESULT_ENTRY(RPC_E_INVALID_STD_NAME, "Principal name is not a valid MSSTD name."),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOIMPERSONATE, "Unable to impersonate DCOM client"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOGETSECCTX, "Unable to obtain server's security context"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOOPENTHREADTOKEN,
                             "Unable to open the access token of the current thread"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOGETTOKENINFO,
                             "Unable to obtain user info from an access token"),
    APARTMENTS_HRESULT_ENTRY(CO_E_TRUSTEEDOESNTMATCHCLIENT,
                             "The client who called IAccessControl::IsAccessPermitted was not the "
                             "trustee provided to the method"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOQUERYCLIENTBLANKET,
                             "Unable to obtain the client's security blanket"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOSETDACL,
                             "Unable to set a discretionary ACL into a security descriptor"),
    APARTMENTS_HRESULT_ENTRY(CO_E_ACCESSCHECKFAILED,
                             "The system function, AccessCheck, returned false"),
    APARTMENTS_HRESULT_ENTRY(CO_E_NETACCESSAPIFAILED,
                             "Either NetAccessDel or NetAccessAdd returned an error code."),
    APARTMENTS_HRESULT_ENTRY(CO_E_WRONGTRUSTEENAMESYNTAX,
                             "One of the trustee strings provided by the user did not conform to "
                             "the <Domain>\\<Name> syntax and it was not the \"*\" string"),
    APARTMENTS_HRESULT_ENTRY(CO_E_INVALIDSID,
                             "One of the security identifiers provided by the user was invalid"),
    APARTMENTS_HRESULT_ENTRY(CO_E_CONVERSIONFAILED,
                             "Unable to convert a wide character trustee string to a multibyte "
                             "trustee string"),
    APARTMENTS_HRESULT_ENTRY(CO_E_NOMATCHINGSIDFOUND,
                             "Unable to find a security identifier that corresponds to a trustee "
                             "string provided by the user"),
    APARTMENTS_HRESULT_ENTRY(CO_E_LOOKUPACCSIDFAILED,
                             "The system function, LookupAccountSID, failed"),
    APARTMENTS_HRESULT_ENTRY(CO_E_NOMATCHINGNAMEFOUND,
                             "Unable to find a trustee name that corresponds to a security "
                             "identifier provided by the user"),
    APARTMENTS_HRESULT_ENTRY(CO_E_LOOKUPACCNAMEFAILED,
                             "The system function, LookupAccountName, failed"),
    APARTMENTS_HRESULT_ENTRY(CO_E_SETSERLHNDLFAILED,
                             "Unable to set or reset a serialization handle"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOGETWINDIR, "Unable to obtain the Windows directory"),
    APARTMENTS_HRESULT_ENTRY(CO_E_PATHTOOLONG, "Path too long"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOGENUUID, "Unable to generate a uuid."),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOCREATEFILE, "Unable to create file"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOCLOSEHANDLE,
                             "Unable to close a serialization handle or a file handle."),
    APARTMENTS_HRESULT_ENTRY(CO_E_EXCEEDSYSACLLIMIT,
                             "The number of ACEs in an ACL exceeds the system limit."),
    APARTMENTS_HRESULT_ENTRY(CO_E_ACESINWRONGORDER,
                             "Not all the DENY_ACCESS ACEs are arranged in front of the "
                             "GRANT_ACCESS ACEs in the stream."),
    APARTMENTS_HRESULT_ENTRY(CO_E_INCOMPATIBLESTREAMVERSION,
                             "The version of ACL format in the stream is not supported by this "
                             "implementation of IAccessControl"),
    APARTMENTS_HRESULT_ENTRY(CO_E_FAILEDTOOPENPROCESSTOKEN,
                             "Unable to open the access token of the server process"),
    APARTMENTS_HRESULT_ENTRY(CO_E_DECODEFAILED,
                             "Unable to decode the ACL in the stream provided by the user"),
    APARTMENTS_HRESULT_ENTRY(CO_E_ACNOTINITIALIZED,
                             "The COM IAccessControl object is not initialized"),
    APARTMENTS_HRESULT_ENTRY(CO_E_CANCEL_DISABLED, "Call Cancellation is disabled"),
    APARTMENTS_HRESULT_ENTRY(RPC_E_UNEXPECTED, "An internal error occurred."),

    // Automation.
    APARTMENTS_HRESULT_ENTRY(DISP_E_UNKNOWNINTERFACE, "Unknown interface."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_MEMBERNOTFOUND, "Member not found."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_PARAMNOTFOUND, "Parameter not found."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_TYPEMISMATCH, "Type mismatch."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_UNKNOWNNAME, "Unknown name."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_NONAMEDARGS, "No named arguments."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_BADVARTYPE, "Bad variable type."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_EXCEPTION, "Exception occurred."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_OVERFLOW, "Out of present range."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_BADINDEX, "Invalid index."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_UNKNOWNLCID, "Unknown language."),
    APARTMENTS_HRESULT_ENTRY(DISP_E_ARRAYISLOCKED, "Memory is locked."),

    // Structured storage.
    APARTMENTS_HRESULT_ENTRY(STG_E_INVALIDFUNCTION, "Unable to perform requested operation."),
    APARTMENTS_HRESULT_ENTRY(STG_E_TOOMANYOPENFILES,
                             "There are insufficient resources to open another file."),
    APARTMENTS_HRESULT_ENTRY(STG_E_ACCESSDENIED, "Access Denied."),
    APARTMENTS_HRESULT_ENTRY(STG_E_INVALIDHANDLE, "Attempted an operation on an invalid object."),
    APARTMENTS_HRESULT_ENTRY(STG_E_INSUFFICIENTMEMORY,
                             "There is insufficient memory available to complete operation."),
    APARTMENTS_HRESULT_ENTRY(STG_E_INVALIDPOINTER, "Invalid pointer error."),
    APARTMENTS_HRESULT_ENTRY(STG_E_NOMOREFILES, "There are no more entries to return."),
    APARTMENTS_HRESULT_ENTRY(STG_E_SEEKERROR, "An error occurred during a seek operation."),
    APARTMENTS_HRESULT_ENTRY(STG_E_WRITEFAULT, "A disk error occurred during a write operation."),
    APARTMENTS_HRESULT_ENTRY(STG_E_READFAULT, "A disk error occurred during a read operation."),
    APARTMENTS_HRESULT_ENTRY(STG_E_SHAREVIOLATION, "A share violation has occurred."),
    APARTMENTS_HRESULT_ENTRY(STG_E_LOCKVIOLATION, "A lock violation has occurred."),
    APARTMENTS_HRESULT_ENTRY(STG_E_INVALIDPARAMETER, "Invalid parameter error."),
    APARTMENTS_HRESULT_ENTRY(STG_E_MEDIUMFULL,
                             "There is insufficient disk space to complete operation."),
    APARTMENTS_HRESULT_ENTRY(STG_E_UNKNOWN, "An unexpected error occurred."),
    APARTMENTS_HRESULT_ENTRY(STG_E_UNIMPLEMENTEDFUNCTION, "That function is not implemented."),
    APARTMENTS_HRESULT_ENTRY(STG_E_INVALIDFLAG, "Invalid flag error."),
    APARTMENTS_HRESULT_ENTRY(STG_E_INUSE, "Attempted to use an object that is busy."),
    APARTMENTS_HRESULT_ENTRY(STG_E_NOTCURRENT,
                             "The storage has been changed since the last commit."),
    APARTMENTS_HRESULT_ENTRY(STG_E_REVERTED,
                             "Attempted to use an object that has ceased to exist."),
    APARTMENTS_HRESULT_ENTRY(STG_E_CANTSAVE, "Can't save."),

    // Interfaces, classes and the registry.
    APARTMENTS_HRESULT_ENTRY(CLASS_E_NOAGGREGATION,
                             "Class does not support aggregation (or class object is remote)"),
    APARTMENTS_HRESULT_ENTRY(CLASS_E_CLASSNOTAVAILABLE,
                             "ClassFactory cannot supply requested class"),
    APARTMENTS_HRESULT_ENTRY(CLASS_E_NOTLICENSED, "Class is not licensed for use"),
    APARTMENTS_HRESULT_ENTRY(REGDB_E_READREGDB, "Could not read key from registry"),
    APARTMENTS_HRESULT_ENTRY(REGDB_E_WRITEREGDB, "Could not write key to registry"),
    APARTMENTS_HRESULT_ENTRY(REGDB_E_KEYMISSING, "Could not find the key in the registry"),
    APARTMENTS_HRESULT_ENTRY(REGDB_E_INVALIDVALUE, "Invalid value for registry"),
    APARTMENTS_HRESULT_ENTRY(REGDB_E_CLASSNOTREG, "Class not registered"),
    APARTMENTS_HRESULT_ENTRY(REGDB_E_IIDNOTREG, "Interface not registered"),
    APARTMENTS_HRESULT_ENTRY(REGDB_E_BADTHREADINGMODEL, "Threading model entry is not valid"),
    APARTMENTS_HRESULT_ENTRY(CO_E_NOTINITIALIZED, "CoInitialize has not been called."),
    APARTMENTS_HRESULT_ENTRY(CO_E_ALREADYINITIALIZED, "CoInitialize has already been called."),
    APARTMENTS_HRESULT_ENTRY(CO_E_CANTDETERMINECLASS, "Class of object cannot be determined"),
    APARTMENTS_HRESULT_ENTRY(CO_E_CLASSSTRING, "Invalid class string"),
    APARTMENTS_HRESULT_ENTRY(CO_E_IIDSTRING, "Invalid interface string"),
    APARTMENTS_HRESULT_ENTRY(CO_E_APPNOTFOUND, "Application not found"),
    APARTMENTS_HRESULT_ENTRY(CO_E_APPSINGLEUSE, "Application cannot be run more than once"),
    APARTMENTS_HRESULT_ENTRY(CO_E_ERRORINAPP, "Some error in application program"),
    APARTMENTS_HRESULT_ENTRY(CO_E_DLLNOTFOUND, "DLL for class not found"),
    APARTMENTS_HRESULT_ENTRY(CO_E_ERRORINDLL, "Error in the DLL"),
    APARTMENTS_HRESULT_ENTRY(CO_E_WRONGOSFORAPP,
                             "Wrong operating system or operating system version for the "
                             "application"),
    APARTMENTS_HRESULT_ENTRY(CO_E_OBJNOTREG, "Object is not registered"),
    APARTMENTS_HRESULT_ENTRY(CO_S_NOTALLINTERFACES,
                             "Not all the requested interfaces were available"),
    APARTMENTS_HRESULT_ENTRY(CO_E_OBJISREG, "Object is already registered"),
    APARTMENTS_HRESULT_ENTRY(CO_E_OBJNOTCONNECTED, "Object is not connected to server"),
    APARTMENTS_HRESULT_ENTRY(CO_E_APPDIDNTREG,
                             "Application was launched but it didn't register a class factory"),
    APARTMENTS_HRESULT_ENTRY(CO_E_RELEASED, "Object has been released"),

    // Activation.
    APARTMENTS_HRESULT_ENTRY(CO_E_SCM_RPC_FAILURE, "RPC communication failed with OLE service"),
    APARTMENTS_HRESULT_ENTRY(CO_E_BAD_PATH, "Bad path to object"),
    APARTMENTS_HRESULT_ENTRY(CO_E_SERVER_EXEC_FAILURE, "Server execution failed"),
    APARTMENTS_HRESULT_ENTRY(CO_E_OBJSRV_RPC_FAILURE,
                             "OLE service could not communicate with the object server"),
    APARTMENTS_HRESULT_ENTRY(CO_E_SERVER_STOPPING,
                             "Object server is stopping when OLE service contacts it"),
};

// Messages are the text of Microsoft's "System Error Codes" pages, which is
// what FormatMessage returns on current Windows (before its "\r\n").
// ERROR_MR_MID_NOT_FOUND is left out: its message has inserts ("%1").
constexpr Win32ErrorEntry kWin32ErrorTable[] = {
    APARTMENTS_WIN32_ENTRY(ERROR_SUCCESS, "The operation completed successfully."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_FUNCTION, "Incorrect function."),
    APARTMENTS_WIN32_ENTRY(ERROR_FILE_NOT_FOUND, "The system cannot find the file specified."),
    APARTMENTS_WIN32_ENTRY(ERROR_PATH_NOT_FOUND, "The system cannot find the path specified."),
    APARTMENTS_WIN32_ENTRY(ERROR_TOO_MANY_OPEN_FILES, "The system cannot open the file."),
    APARTMENTS_WIN32_ENTRY(ERROR_ACCESS_DENIED, "Access is denied."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_HANDLE, "The handle is invalid."),
    APARTMENTS_WIN32_ENTRY(ERROR_NOT_ENOUGH_MEMORY,
                           "Not enough memory resources are available to process this command."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_ACCESS, "The access code is invalid."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_DATA, "The data is invalid."),
    APARTMENTS_WIN32_ENTRY(ERROR_OUTOFMEMORY,
                           "Not enough memory resources are available to complete this "
                           "operation."),
    APARTMENTS_WIN32_ENTRY(ERROR_NOT_READY, "The device is not ready."),
    APARTMENTS_WIN32_ENTRY(ERROR_BAD_LENGTH,
                           "The program issued a command but the command length is incorrect."),
    APARTMENTS_WIN32_ENTRY(ERROR_GEN_FAILURE,
                           "A device attached to the system is not functioning."),
    APARTMENTS_WIN32_ENTRY(ERROR_SHARING_VIOLATION,
                           "The process cannot access the file because it is being used by "
                           "another process."),
    APARTMENTS_WIN32_ENTRY(ERROR_LOCK_VIOLATION,
                           "The process cannot access the file because another process has locked "
                           "a portion of the file."),
    APARTMENTS_WIN32_ENTRY(ERROR_HANDLE_EOF, "Reached the end of the file."),
    APARTMENTS_WIN32_ENTRY(ERROR_HANDLE_DISK_FULL, "The disk is full."),
    APARTMENTS_WIN32_ENTRY(ERROR_NOT_SUPPORTED, "The request is not supported."),
    APARTMENTS_WIN32_ENTRY(ERROR_FILE_EXISTS, "The file exists."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_PARAMETER, "The parameter is incorrect."),
    APARTMENTS_WIN32_ENTRY(ERROR_TOO_MANY_SEMAPHORES, "Cannot create another system semaphore."),
    APARTMENTS_WIN32_ENTRY(ERROR_SEM_OWNER_DIED,
                           "The previous ownership of this semaphore has ended."),
    APARTMENTS_WIN32_ENTRY(ERROR_BROKEN_PIPE, "The pipe has been ended."),
    APARTMENTS_WIN32_ENTRY(ERROR_BUFFER_OVERFLOW, "The file name is too long."),
    APARTMENTS_WIN32_ENTRY(ERROR_DISK_FULL, "There is not enough space on the disk."),
    APARTMENTS_WIN32_ENTRY(ERROR_CALL_NOT_IMPLEMENTED,
                           "This function is not supported on this system."),
    APARTMENTS_WIN32_ENTRY(ERROR_SEM_TIMEOUT, "The semaphore timeout period has expired."),
    APARTMENTS_WIN32_ENTRY(ERROR_INSUFFICIENT_BUFFER,
                           "The data area passed to a system call is too small."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_NAME,
                           "The filename, directory name, or volume label syntax is incorrect."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_LEVEL, "The system call level is not correct."),
    APARTMENTS_WIN32_ENTRY(ERROR_MOD_NOT_FOUND, "The specified module could not be found."),
    APARTMENTS_WIN32_ENTRY(ERROR_PROC_NOT_FOUND, "The specified procedure could not be found."),
    APARTMENTS_WIN32_ENTRY(ERROR_WAIT_NO_CHILDREN, "There are no child processes to wait for."),
    APARTMENTS_WIN32_ENTRY(ERROR_TOO_MANY_TCBS, "Cannot create another thread."),
    APARTMENTS_WIN32_ENTRY(ERROR_NOT_LOCKED, "The segment is already unlocked."),
    APARTMENTS_WIN32_ENTRY(ERROR_BAD_ARGUMENTS, "One or more arguments are not correct."),
    APARTMENTS_WIN32_ENTRY(ERROR_BAD_PATHNAME, "The specified path is invalid."),
    APARTMENTS_WIN32_ENTRY(ERROR_MAX_THRDS_REACHED,
                           "No more threads can be created in the system."),
    APARTMENTS_WIN32_ENTRY(ERROR_BUSY, "The requested resource is in use."),
    APARTMENTS_WIN32_ENTRY(ERROR_ALREADY_EXISTS,
                           "Cannot create a file when that file already exists."),
    APARTMENTS_WIN32_ENTRY(ERROR_SEM_NOT_FOUND,
                           "The specified system semaphore name was not found."),
    APARTMENTS_WIN32_ENTRY(ERROR_ENVVAR_NOT_FOUND,
                           "The system could not find the environment option that was entered."),
    APARTMENTS_WIN32_ENTRY(ERROR_FILENAME_EXCED_RANGE, "The filename or extension is too long."),
    APARTMENTS_WIN32_ENTRY(ERROR_PIPE_BUSY, "All pipe instances are busy."),
    APARTMENTS_WIN32_ENTRY(ERROR_NO_DATA, "The pipe is being closed."),
    APARTMENTS_WIN32_ENTRY(ERROR_PIPE_NOT_CONNECTED, "No process is on the other end of the pipe."),
    APARTMENTS_WIN32_ENTRY(ERROR_MORE_DATA, "More data is available."),
    APARTMENTS_WIN32_ENTRY(ERROR_NO_MORE_ITEMS, "No more data is available."),
    APARTMENTS_WIN32_ENTRY(ERROR_DIRECTORY, "The directory name is invalid."),
    APARTMENTS_WIN32_ENTRY(ERROR_NOT_OWNER, "Attempt to release mutex not owned by caller."),
    APARTMENTS_WIN32_ENTRY(ERROR_TOO_MANY_POSTS, "Too many posts were made to a semaphore."),
    APARTMENTS_WIN32_ENTRY(ERROR_PARTIAL_COPY,
                           "Only part of a ReadProcessMemory or WriteProcessMemory request was "
                           "completed."),
    APARTMENTS_WIN32_ENTRY(ERROR_DELETE_PENDING,
                           "The file cannot be opened because it is in the process of being "
                           "deleted."),
    APARTMENTS_WIN32_ENTRY(ERROR_THREAD_MODE_ALREADY_BACKGROUND,
                           "The thread is already in background processing mode."),
    APARTMENTS_WIN32_ENTRY(ERROR_THREAD_MODE_NOT_BACKGROUND,
                           "The thread is not in background processing mode."),
    APARTMENTS_WIN32_ENTRY(ERROR_PROCESS_MODE_ALREADY_BACKGROUND,
                           "The process is already in background processing mode."),
    APARTMENTS_WIN32_ENTRY(ERROR_PROCESS_MODE_NOT_BACKGROUND,
                           "The process is not in background processing mode."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_ADDRESS, "Attempt to access invalid address."),
    APARTMENTS_WIN32_ENTRY(ERROR_ARITHMETIC_OVERFLOW, "Arithmetic result exceeded 32 bits."),
    APARTMENTS_WIN32_ENTRY(ERROR_CANT_WAIT,
                           "Used to indicate that an operation cannot continue without blocking "
                           "for I/O."),
    // Windows' message for these two is their own name.
    APARTMENTS_WIN32_ENTRY(ERROR_ABANDONED_WAIT_0, "ERROR_ABANDONED_WAIT_0"),
    APARTMENTS_WIN32_ENTRY(ERROR_ABANDONED_WAIT_63, "ERROR_ABANDONED_WAIT_63"),
    APARTMENTS_WIN32_ENTRY(ERROR_OPERATION_ABORTED,
                           "The I/O operation has been aborted because of either a thread exit or "
                           "an application request."),
    APARTMENTS_WIN32_ENTRY(ERROR_IO_INCOMPLETE, "Overlapped I/O event is not in a signaled state."),
    APARTMENTS_WIN32_ENTRY(ERROR_IO_PENDING, "Overlapped I/O operation is in progress."),
    APARTMENTS_WIN32_ENTRY(ERROR_NOACCESS, "Invalid access to memory location."),
    APARTMENTS_WIN32_ENTRY(ERROR_STACK_OVERFLOW, "Recursion too deep; the stack overflowed."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_MESSAGE, "The window cannot act on the sent message."),
    APARTMENTS_WIN32_ENTRY(ERROR_CAN_NOT_COMPLETE, "Cannot complete this function."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_FLAGS, "Invalid flags."),
    APARTMENTS_WIN32_ENTRY(ERROR_SHUTDOWN_IN_PROGRESS, "A system shutdown is in progress."),
    APARTMENTS_WIN32_ENTRY(ERROR_POSSIBLE_DEADLOCK,
                           "A potential deadlock condition has been detected."),
    APARTMENTS_WIN32_ENTRY(ERROR_MESSAGE_SYNC_ONLY,
                           "The message can be used only with synchronous operations."),
    APARTMENTS_WIN32_ENTRY(ERROR_DEVICE_NOT_CONNECTED, "The device is not connected."),
    APARTMENTS_WIN32_ENTRY(ERROR_NOT_FOUND, "Element not found."),
    APARTMENTS_WIN32_ENTRY(ERROR_CANCELLED, "The operation was canceled by the user."),
    APARTMENTS_WIN32_ENTRY(ERROR_RETRY,
                           "The operation could not be completed. A retry should be performed."),
    APARTMENTS_WIN32_ENTRY(ERROR_ALREADY_INITIALIZED,
                           "An attempt was made to perform an initialization operation when "
                           "initialization has already been completed."),
    APARTMENTS_WIN32_ENTRY(ERROR_PRIVILEGE_NOT_HELD,
                           "A required privilege is not held by the client."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_WINDOW_HANDLE, "Invalid window handle."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_MENU_HANDLE, "Invalid menu handle."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_HOOK_HANDLE, "Invalid hook handle."),
    APARTMENTS_WIN32_ENTRY(ERROR_TLW_WITH_WSCHILD, "Cannot create a top-level child window."),
    APARTMENTS_WIN32_ENTRY(ERROR_CANNOT_FIND_WND_CLASS, "Cannot find window class."),
    APARTMENTS_WIN32_ENTRY(ERROR_WINDOW_OF_OTHER_THREAD,
                           "Invalid window; it belongs to other thread."),
    APARTMENTS_WIN32_ENTRY(ERROR_CLASS_ALREADY_EXISTS, "Class already exists."),
    APARTMENTS_WIN32_ENTRY(ERROR_CLASS_DOES_NOT_EXIST, "Class does not exist."),
    APARTMENTS_WIN32_ENTRY(ERROR_CLASS_HAS_WINDOWS, "Class still has open windows."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_INDEX, "Invalid index."),
    APARTMENTS_WIN32_ENTRY(ERROR_DESTROY_OBJECT_OF_OTHER_THREAD,
                           "Cannot destroy object created by another thread."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_THREAD_ID, "Invalid thread identifier."),
    APARTMENTS_WIN32_ENTRY(ERROR_NO_SYSTEM_RESOURCES,
                           "Insufficient system resources exist to complete the requested "
                           "service."),
    APARTMENTS_WIN32_ENTRY(ERROR_WORKING_SET_QUOTA,
                           "Insufficient quota to complete the requested service."),
    APARTMENTS_WIN32_ENTRY(ERROR_COMMITMENT_LIMIT,
                           "The paging file is too small for this operation to complete."),
    APARTMENTS_WIN32_ENTRY(ERROR_TIMEOUT,
                           "This operation returned because the timeout period expired."),
    APARTMENTS_WIN32_ENTRY(ERROR_RESOURCE_LANG_NOT_FOUND,
                           "The specified resource language ID cannot be found in the image "
                           "file."),
    APARTMENTS_WIN32_ENTRY(ERROR_NOT_ENOUGH_QUOTA,
                           "Not enough quota is available to process this command."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_OPERATION, "The operation identifier is not valid."),
    APARTMENTS_WIN32_ENTRY(ERROR_INVALID_STATE,
                           "The group or resource is not in the correct state to perform the "
                           "requested operation."),
};

#undef APARTMENTS_HRESULT_ENTRY
#undef APARTMENTS_WIN32_ENTRY

// A duplicate value would make the later entry unreachable: refuse to build.
template <typename Entry>
constexpr bool ValuesAreUnique(std::span<const Entry> table) {
  for (std::size_t i = 0; i < table.size(); ++i) {
    for (std::size_t j = i + 1; j < table.size(); ++j) {
      if (table[i].value == table[j].value) return false;
    }
  }
  return true;
}
static_assert(ValuesAreUnique<HResultEntry>(kHResultTable), "duplicate HRESULT in the table");
static_assert(ValuesAreUnique<Win32ErrorEntry>(kWin32ErrorTable),
              "duplicate Win32 error in the table");

// The lookups are linear scans: a few hundred comparisons, on error paths only.
const HResultEntry* FindHResult(HRESULT hr) noexcept {
  const auto* it = std::find_if(std::begin(kHResultTable), std::end(kHResultTable),
                                [hr](const HResultEntry& entry) { return entry.value == hr; });
  return it == std::end(kHResultTable) ? nullptr : it;
}

const Win32ErrorEntry* FindWin32Error(DWORD code) noexcept {
  const auto* it =
      std::find_if(std::begin(kWin32ErrorTable), std::end(kWin32ErrorTable),
                   [code](const Win32ErrorEntry& entry) { return entry.value == code; });
  return it == std::end(kWin32ErrorTable) ? nullptr : it;
}

// The Win32 error wrapped in an HRESULT_FROM_WIN32 value (0x8007xxxx), or
// nullptr when `bits` is not one or wraps an unknown error. HRESULT_FROM_WIN32
// keeps only the low 16 bits of the error, so that is all there is to find.
const Win32ErrorEntry* FindWrappedWin32Error(DWORD bits) noexcept {
  constexpr DWORD kWin32FailureHigh = (1u << 31) | (static_cast<DWORD>(FACILITY_WIN32) << 16);
  if ((bits & 0xFFFF0000u) != kWin32FailureHigh) return nullptr;
  // HRESULT_FROM_WIN32(0) is 0, never 0x80070000.
  const DWORD code = bits & 0xFFFFu;
  return code == 0 ? nullptr : FindWin32Error(code);
}

// The text FormatMessage returns for `message_id` on Windows, without the
// line break, or nullptr. Values below 0x10000 are Win32 errors (so 0 and 1
// read as ERROR_SUCCESS and ERROR_INVALID_FUNCTION, not S_OK and S_FALSE, as
// on Windows); HRESULT_FROM_WIN32 values use their Win32 error's text.
const char* FindSystemMessage(DWORD message_id) noexcept {
  if (message_id <= 0xFFFFu) {
    const Win32ErrorEntry* entry = FindWin32Error(message_id);
    return entry == nullptr ? nullptr : entry->message;
  }
  if (const Win32ErrorEntry* entry = FindWrappedWin32Error(message_id)) return entry->message;
  const HResultEntry* entry = FindHResult(static_cast<HRESULT>(message_id));
  return entry == nullptr ? nullptr : entry->message;
}

// Only English text exists; Windows fails the same way for a language it has
// no text in.
bool IsSupportedLanguage(DWORD language_id) noexcept {
  if (language_id > 0xFFFFu) return false;
  const DWORD primary = PRIMARYLANGID(language_id);
  return primary == LANG_NEUTRAL || primary == LANG_ENGLISH;
}

// FormatMessageA and FormatMessageW: CharT is char or wchar_t. Every message
// is plain ASCII, so widening is a per-character copy.
template <typename CharT>
DWORD FormatSystemMessage(DWORD flags, DWORD message_id, DWORD language_id, CharT* buffer,
                          DWORD size) noexcept {
  if ((flags & FORMAT_MESSAGE_FROM_STRING) != 0 || (flags & FORMAT_MESSAGE_FROM_SYSTEM) == 0 ||
      buffer == nullptr) {
    SetLastError(ERROR_INVALID_PARAMETER);
    return 0;
  }
  const bool allocate = (flags & FORMAT_MESSAGE_ALLOCATE_BUFFER) != 0;
  // With FORMAT_MESSAGE_ALLOCATE_BUFFER, `buffer` is really a CharT**.
  CharT** allocated_out = allocate ? reinterpret_cast<CharT**>(buffer) : nullptr;
  if (allocated_out != nullptr) *allocated_out = nullptr;

  if (!IsSupportedLanguage(language_id)) {
    SetLastError(ERROR_RESOURCE_LANG_NOT_FOUND);
    return 0;
  }
  const char* message = FindSystemMessage(message_id);
  if (message == nullptr) {
    SetLastError(ERROR_MR_MID_NOT_FOUND);
    return 0;
  }

  // A system message is one line ending in a line break. Width 0xFF turns
  // line breaks into spaces, as Windows does.
  const bool breaks_to_spaces =
      (flags & FORMAT_MESSAGE_MAX_WIDTH_MASK) == FORMAT_MESSAGE_MAX_WIDTH_MASK;
  const char* line_end = breaks_to_spaces ? " " : "\r\n";
  const std::size_t message_length = std::strlen(message);
  const std::size_t length = message_length + std::strlen(line_end);

  CharT* out = buffer;
  if (allocate) {
    const std::size_t capacity = std::max<std::size_t>(length + 1, size);
    out = static_cast<CharT*>(std::malloc(capacity * sizeof(CharT)));
    if (out == nullptr) {
      SetLastError(ERROR_NOT_ENOUGH_MEMORY);
      return 0;
    }
  } else if (length + 1 > size) {
    SetLastError(ERROR_INSUFFICIENT_BUFFER);
    return 0;
  }

  CharT* cursor = out;
  for (const char* text : {message, line_end}) {
    for (; *text != '\0'; ++text) {
      *cursor++ = static_cast<CharT>(static_cast<unsigned char>(*text));
    }
  }
  *cursor = CharT{0};
  if (allocated_out != nullptr) *allocated_out = out;
  return static_cast<DWORD>(length);
}

// "0x80010100": the 32-bit pattern, which is how HRESULTs are written.
std::string HexHResult(HRESULT hr) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08X", static_cast<unsigned int>(hr));
  return text;
}

}  // namespace

std::span<const HResultEntry> HResultTableForTesting() noexcept { return kHResultTable; }

std::span<const Win32ErrorEntry> Win32ErrorTableForTesting() noexcept { return kWin32ErrorTable; }

}  // namespace internal

ErrorDescription DescribeHResult(HRESULT hr) noexcept {
  if (const internal::HResultEntry* entry = internal::FindHResult(hr)) {
    return {entry->name, entry->message};
  }
  if (const internal::Win32ErrorEntry* entry =
          internal::FindWrappedWin32Error(static_cast<DWORD>(hr))) {
    return {entry->hresult_name, entry->message};
  }
  return {nullptr, nullptr};
}

ErrorDescription DescribeWin32Error(DWORD code) noexcept {
  if (const internal::Win32ErrorEntry* entry = internal::FindWin32Error(code)) {
    return {entry->name, entry->message};
  }
  return {nullptr, nullptr};
}

std::string FormatHResult(HRESULT hr) {
  const ErrorDescription description = DescribeHResult(hr);
  if (description.name == nullptr) return internal::HexHResult(hr) + " (unknown HRESULT)";
  return std::string(description.name) + " (" + internal::HexHResult(hr) +
         "): " + description.message;
}

std::string FormatWin32Error(DWORD code) {
  const ErrorDescription description = DescribeWin32Error(code);
  if (description.name == nullptr) return std::to_string(code) + " (unknown Win32 error)";
  return std::string(description.name) + " (" + std::to_string(code) + "): " + description.message;
}

}  // namespace apartments

extern "C" {

DWORD WINAPI FormatMessageA(DWORD dwFlags, LPCVOID /*lpSource*/, DWORD dwMessageId,
                            DWORD dwLanguageId, LPSTR lpBuffer, DWORD nSize,
                            va_list* /*Arguments*/) {
  return apartments::internal::FormatSystemMessage(dwFlags, dwMessageId, dwLanguageId, lpBuffer,
                                                   nSize);
}

DWORD WINAPI FormatMessageW(DWORD dwFlags, LPCVOID /*lpSource*/, DWORD dwMessageId,
                            DWORD dwLanguageId, LPWSTR lpBuffer, DWORD nSize,
                            va_list* /*Arguments*/) {
  return apartments::internal::FormatSystemMessage(dwFlags, dwMessageId, dwLanguageId, lpBuffer,
                                                   nSize);
}

HLOCAL WINAPI LocalFree(HLOCAL hMem) {
  std::free(hMem);
  return nullptr;
}

}  // extern "C"
