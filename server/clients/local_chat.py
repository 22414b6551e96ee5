"""mentee in-process, as a LangChain chat model: no server, the teacher any LangChain chat model object.

.. code-block:: python

    from langchain_openai import ChatOpenAI
    from mentee.server import LocalChatMentee

    chat = LocalChatMentee(teacher_model=ChatOpenAI(model="gpt-4o-mini"))  # settings from MENTEE_* / defaults
    print(chat.invoke("Who wrote The Old Man and the Sea?").content)

The first call starts the student (vLLM) and opens the memory; ``close()`` (or a ``with`` block) stops them.
Answers carry mentee's routing in ``response_metadata["mentee"]`` and token counts in ``usage_metadata``; the
switches ``memory``, ``teacher``, ``learn`` are fields and per-call options, as in :class:`ChatMentee`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from .langchain_chat import SWITCHES, to_openai

if TYPE_CHECKING:
    from typing import Self

    from ..service import Mentee


class LocalChatMentee(BaseChatModel):
    """A learning chat model in this process: memory -> student (vLLM) -> teacher, remembering what it is taught."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Any = Field(default=None, description="mentee Settings; None reads MENTEE_* and the defaults.")
    teacher_model: Any = Field(default=None, description="A LangChain chat model as the teacher (else the settings').")
    memory: bool = Field(default=True, description="Let remembered answers answer.")
    teacher: bool = Field(default=True, description="Let the teacher answer when the student is unsure.")
    learn: bool = Field(default=True, description="Remember what the teacher answers.")
    _mentee: Mentee | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "mentee-local"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider="mentee", ls_model_name=self.mentee.settings.api_model_name, ls_model_type="chat"
        )

    @property
    def mentee(self) -> Mentee:
        """The running mentee (started on first use)."""
        with self._lock:
            if self._mentee is None:
                from ..core.config import load_settings
                from ..service import Mentee

                running = Mentee(self.settings or load_settings(), chat_model=self.teacher_model)
                running.start()
                self._mentee = running
            return self._mentee

    def close(self) -> None:
        """Stop the student and close the memory (a later call starts them again)."""
        with self._lock:
            if self._mentee is not None:
                self._mentee.close()
                self._mentee = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from ..serving.router import Switches
        from ..student.prompting import ChatMessage

        switches = Switches(**{name: bool(kwargs.get(name, getattr(self, name))) for name in SWITCHES})
        conversation = [ChatMessage(m["role"], m["content"]) for m in map(to_openai, messages)]
        routed = self.mentee.answer(conversation, switches)
        message = AIMessage(
            content=routed.text,
            response_metadata={
                "model_name": self.mentee.settings.api_model_name,
                "model_provider": "mentee",
                "finish_reason": "stop",
                "mentee": routed.info(),
            },
            usage_metadata=UsageMetadata(
                input_tokens=routed.tokens_in,
                output_tokens=routed.tokens_out,
                total_tokens=routed.tokens_in + routed.tokens_out,
            ),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
