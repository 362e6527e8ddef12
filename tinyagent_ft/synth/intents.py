"""Intents of the synthetic dataset: phrasings (with ``{slot}`` fields) and the gold plan they imply.

A builder receives the filled slots and returns ``(tool, args)`` calls; ``"$k"`` refers to call k.
Every phrasing states all the information the plan's arguments need.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Calls = list[tuple[str, tuple]]


@dataclass(frozen=True)
class Intent:
    name: str
    phrasings: tuple[str, ...]
    build: Callable[[dict], Calls]
    weight: float = 1.0


def email(p):
    return ("get_email_address", (p,))


def phone(p):
    return ("get_phone_number", (p,))


def event(v, invitees=(), location="", notes="", title=None):
    return ("create_calendar_event", (title or v["title"], v["start"], v["end"], location, list(invitees), notes, ""))


def compose(to, subject, context="", cc=(), attach=()):
    return ("compose_new_email", (list(to), list(cc), subject, context, list(attach)))


def open_file(f):
    return ("open_and_get_file_path", (f,))


def summarize(ref):
    return ("summarize_pdf", (ref,))


def sms(to, message):
    return ("send_sms", (list(to), message))


def zoom(v, invitees):
    return ("get_zoom_meeting_link", (v["topic"], v["start"], v["minutes"], list(invitees)))


def reminder(v, due="", notes="", list_name="", priority=0, all_day=False, name=None):
    return ("create_reminder", (name or v["task"], due, notes, list_name, priority, all_day))


I = Intent
INTENTS: tuple[Intent, ...] = (
    # --- calendar -------------------------------------------------------------------------
    I("event_simple", (
        "Create a calendar event called {title} {when}.",
        "Add {title} to my calendar {when}.",
        "Schedule {title} {when}.",
        "Put an event named {title} on my calendar {when}.",
        "Block my calendar {when} for {title}.",
        "Set up a calendar entry titled {title} {when}.",
    ), lambda v: [event(v)]),
    I("event_location", (
        "Create an event called {title} {when} at {place}.",
        "Schedule {title} at {place} {when}.",
        "Add {title} to my calendar {when}, location {place}.",
        "Put {title} on my calendar at {place} {when}.",
        "I have {title} at {place} {when}; add it to my calendar.",
    ), lambda v: [event(v, location=v["place"])]),
    I("event_duration", (
        "Schedule {title} {when} for {duration} minutes.",
        "Create a {duration}-minute event called {title} {when}.",
        "Add {title} to my calendar {when}; it lasts {duration} minutes.",
        "Block {duration} minutes {when} for {title}.",
        "Put a {duration} minute {title} on my calendar {when}.",
    ), lambda v: [event(v)]),
    I("event_invite_one", (
        "Schedule {title} with {person} {when}.",
        "Create a calendar event called {title} {when} and invite {person}.",
        "Set up {title} {when} with {person} as an invitee.",
        "Invite {person} to {title} {when}.",
        "Add {title} to my calendar {when} and send an invite to {person}.",
    ), lambda v: [email(v["person"]), event(v, ["$1"])]),
    I("event_invite_two", (
        "Schedule {title} with {person} and {person2} {when}.",
        "Create an event called {title} {when} and invite {person} and {person2}.",
        "Set up {title} {when} with {person} and {person2}.",
        "Invite {person} and {person2} to {title} {when}.",
        "Put {title} on my calendar {when}; invitees are {person} and {person2}.",
    ), lambda v: [email(v["person"]), email(v["person2"]), event(v, ["$1", "$2"])]),
    I("event_invite_three", (
        "Schedule {title} with {person}, {person2} and {person3} {when}.",
        "Create a calendar event {title} {when} and invite {person}, {person2} and {person3}.",
        "Invite {person}, {person2} and {person3} to {title} {when}.",
        "Set up {title} {when} with {person}, {person2}, and {person3}.",
        "Add {title} {when} to my calendar with {person}, {person2} and {person3} invited.",
    ), lambda v: [email(v["person"]), email(v["person2"]), email(v["person3"]), event(v, ["$1", "$2", "$3"])]),
    I("event_invite_address", (
        "Schedule {title} {when} and invite {email}.",
        "Create an event called {title} {when} with {email} as the invitee.",
        "Invite {email} to {title} {when}.",
        "Set up {title} {when}; send the invite to {email}.",
        "Add {title} to my calendar {when} and invite {email}.",
    ), lambda v: [event(v, [v["email"]])]),
    I("event_invite_location", (
        "Schedule {title} with {person} at {place} {when}.",
        "Create an event {title} at {place} {when} and invite {person}.",
        "Invite {person} to {title} at {place} {when}.",
        "Set up {title} {when} at {place} with {person}.",
        "Meet {person} for {title} at {place} {when}; put it on my calendar with them invited.",
    ), lambda v: [email(v["person"]), event(v, ["$1"], location=v["place"])]),
    # --- contacts -------------------------------------------------------------------------
    I("get_phone", (
        "What is {person}'s phone number?",
        "Find the phone number of {person}.",
        "Look up {person}'s number.",
        "Get me the phone number for {person}.",
        "I need {person}'s phone number.",
    ), lambda v: [phone(v["person"])]),
    I("get_email", (
        "What is {person}'s email address?",
        "Find the email address of {person}.",
        "Look up {person}'s email.",
        "Get me the email address for {person}.",
        "I need {person}'s email address.",
    ), lambda v: [email(v["person"])]),
    I("get_two_emails", (
        "What are the email addresses of {person} and {person2}?",
        "Find the emails of {person} and {person2}.",
        "Look up email addresses for {person} and {person2}.",
        "Get me {person}'s and {person2}'s email addresses.",
        "I need the email addresses of {person} and {person2}.",
    ), lambda v: [email(v["person"]), email(v["person2"])]),
    I("get_phone_and_email", (
        "Get {person}'s phone number and email address.",
        "What are {person}'s phone number and email?",
        "Look up both the number and the email of {person}.",
        "Find {person}'s contact details: phone and email.",
        "I need {person}'s email address and phone number.",
    ), lambda v: [phone(v["person"]), email(v["person"])]),
    # --- files ----------------------------------------------------------------------------
    I("open_file", (
        "Open {file}.",
        "Find the file {file} and open it.",
        "Can you open the document {file}?",
        "Open up {file} for me.",
        "Locate and open {file}.",
    ), lambda v: [open_file(v["file"])]),
    I("summarize_file", (
        "Summarize {file}.",
        "Give me a summary of {file}.",
        "What is in {file}? Summarize it.",
        "Open {file} and summarize it.",
        "Can you summarize the document {file}?",
    ), lambda v: [open_file(v["file"]), summarize("$1")]),
    I("summarize_two_files", (
        "Summarize {file} and {file2}.",
        "Give me summaries of {file} and {file2}.",
        "Open {file} and {file2} and summarize both.",
        "What do {file} and {file2} say? Summarize each.",
        "Can you summarize the documents {file} and {file2}?",
    ), lambda v: [open_file(v["file"]), open_file(v["file2"]), summarize("$1"), summarize("$2")]),
    # --- mail -----------------------------------------------------------------------------
    I("email_one", (
        "Send an email to {person} with the subject {subject}.",
        "Email {person} about {subject}.",
        "Compose an email to {person}, subject {subject}.",
        "Write a new email to {person} titled {subject}.",
        "Draft an email for {person} with subject line {subject}.",
    ), lambda v: [email(v["person"]), compose(["$1"], v["subject"])]),
    I("email_two", (
        "Send an email to {person} and {person2} with the subject {subject}.",
        "Email {person} and {person2} about {subject}.",
        "Compose an email to {person} and {person2}, subject {subject}.",
        "Write one email to both {person} and {person2} titled {subject}.",
        "Draft an email for {person} and {person2} with subject line {subject}.",
    ), lambda v: [email(v["person"]), email(v["person2"]), compose(["$1", "$2"], v["subject"])]),
    I("email_three", (
        "Send an email to {person}, {person2} and {person3} with the subject {subject}.",
        "Email {person}, {person2} and {person3} about {subject}.",
        "Compose one email to {person}, {person2}, and {person3}, subject {subject}.",
        "Write an email titled {subject} to {person}, {person2} and {person3}.",
        "Draft an email for {person}, {person2} and {person3} with subject line {subject}.",
    ), lambda v: [email(v["person"]), email(v["person2"]), email(v["person3"]),
                  compose(["$1", "$2", "$3"], v["subject"])]),
    I("email_address", (
        "Send an email to {email} with the subject {subject}.",
        "Email {email} about {subject}.",
        "Compose an email to {email}, subject {subject}.",
        "Write a new email to {email} titled {subject}.",
        "Draft an email to the address {email} with subject line {subject}.",
    ), lambda v: [compose([v["email"]], v["subject"])]),
    I("email_cc", (
        "Email {person} about {subject} and cc {person2}.",
        "Send an email to {person} with the subject {subject}, cc'ing {person2}.",
        "Compose an email to {person} titled {subject} with {person2} in cc.",
        "Write to {person} about {subject}; put {person2} on cc.",
        "Draft an email for {person}, subject {subject}, and copy {person2}.",
    ), lambda v: [email(v["person"]), email(v["person2"]), compose(["$1"], v["subject"], cc=["$2"])]),
    I("email_attachment", (
        "Email {file} to {person} with the subject {subject}.",
        "Send {person} an email titled {subject} with {file} attached.",
        "Attach {file} to an email to {person} about {subject}.",
        "Compose an email to {person}, subject {subject}, and attach {file}.",
        "Share {file} with {person} by email, subject {subject}.",
    ), lambda v: [email(v["person"]), open_file(v["file"]), compose(["$1"], v["subject"], attach=["$2"])]),
    I("email_attachment_two", (
        "Email {file} to {person} and {person2} with the subject {subject}.",
        "Send {person} and {person2} an email titled {subject} with {file} attached.",
        "Attach {file} to an email to {person} and {person2} about {subject}.",
        "Compose an email to {person} and {person2}, subject {subject}, and attach {file}.",
        "Share {file} with {person} and {person2} by email, subject {subject}.",
    ), lambda v: [email(v["person"]), email(v["person2"]), open_file(v["file"]),
                  compose(["$1", "$2"], v["subject"], attach=["$3"])]),
    I("email_summary", (
        "Summarize {file} and email the summary to {person} with the subject {subject}.",
        "Send {person} a summary of {file}, subject {subject}.",
        "Email {person} about {subject} with a summary of {file}.",
        "Read {file}, summarize it, and send the summary to {person} titled {subject}.",
        "Compose an email to {person} with subject {subject} containing the summary of {file}.",
    ), lambda v: [open_file(v["file"]), summarize("$1"), email(v["person"]),
                  compose(["$3"], v["subject"], context="$2")]),
    I("email_summary_attach", (
        "Email {file} and its summary to {person} with the subject {subject}.",
        "Send {person} {file} as an attachment together with a summary of it, subject {subject}.",
        "Attach {file} to an email to {person} titled {subject} and include a summary of it.",
        "Summarize {file} and email it, attached, to {person} with subject {subject}.",
        "Share {file} with {person} by email with a summary in the body, subject {subject}.",
    ), lambda v: [open_file(v["file"]), summarize("$1"), email(v["person"]),
                  compose(["$3"], v["subject"], context="$2", attach=["$1"])]),
    I("reply_simple", (
        "Reply to this email.",
        "Send a reply to the selected email.",
        "Respond to the email I have open.",
        "Write a reply to this message.",
        "Answer the current email.",
    ), lambda v: [("reply_to_email", ([], "", []))], weight=0.3),
    I("reply_attach", (
        "Reply to this email and attach {file}.",
        "Send a reply with {file} attached.",
        "Respond to the email I have open with {file}.",
        "Attach {file} to a reply to this email.",
        "Answer the current email and include the file {file}.",
    ), lambda v: [open_file(v["file"]), ("reply_to_email", ([], "", ["$1"]))]),
    I("reply_cc", (
        "Reply to this email and cc {person}.",
        "Send a reply to the selected email with {person} in cc.",
        "Respond to this email and copy {person}.",
        "Reply to the current email, cc'ing {person}.",
        "Answer this email and put {person} on cc.",
    ), lambda v: [email(v["person"]), ("reply_to_email", (["$1"], "", []))]),
    I("reply_summary", (
        "Reply to this email with a summary of {file}.",
        "Summarize {file} and send the summary as a reply.",
        "Respond to the email I have open with the summary of {file}.",
        "Write a reply containing a summary of {file}.",
        "Answer the current email with a summary of the document {file}.",
    ), lambda v: [open_file(v["file"]), summarize("$1"), ("reply_to_email", ([], "$2", []))]),
    I("forward_one", (
        "Forward this email to {person}.",
        "Send this email on to {person}.",
        "Forward the selected email to {person}.",
        "Pass the current email along to {person}.",
        "Can you forward this message to {person}?",
    ), lambda v: [email(v["person"]), ("forward_email", (["$1"], [], "", []))]),
    I("forward_two", (
        "Forward this email to {person} and {person2}.",
        "Send this email on to {person} and {person2}.",
        "Forward the selected email to both {person} and {person2}.",
        "Pass the current email along to {person} and {person2}.",
        "Can you forward this message to {person} and {person2}?",
    ), lambda v: [email(v["person"]), email(v["person2"]), ("forward_email", (["$1", "$2"], [], "", []))]),
    I("forward_address", (
        "Forward this email to {email}.",
        "Send this email on to {email}.",
        "Forward the selected email to the address {email}.",
        "Pass the current email along to {email}.",
        "Can you forward this message to {email}?",
    ), lambda v: [("forward_email", ([v["email"]], [], "", []))]),
    I("forward_attach", (
        "Forward this email to {person} and attach {file}.",
        "Send this email on to {person} with {file} attached.",
        "Forward the selected email to {person} together with {file}.",
        "Pass the current email along to {person} and include the file {file}.",
        "Attach {file} and forward this message to {person}.",
    ), lambda v: [email(v["person"]), open_file(v["file"]), ("forward_email", (["$1"], [], "", ["$2"]))]),
    # --- maps -----------------------------------------------------------------------------
    I("open_location", (
        "Show {place} on the map.",
        "Open {place} in Maps.",
        "Where is {place}? Open it in Maps.",
        "Find {place} on the map.",
        "Pull up {place} in Maps.",
    ), lambda v: [("maps_open_location", (v["place"],))]),
    I("directions_drive", (
        "How do I drive to {place}?",
        "Show me driving directions to {place}.",
        "Get directions to {place} by car.",
        "Give me directions to {place}.",
        "Navigate to {place}.",
    ), lambda v: [("maps_show_directions", ("", v["place"], "d"))]),
    I("directions_walk", (
        "How do I walk to {place}?",
        "Show me walking directions to {place}.",
        "Get directions to {place} on foot.",
        "I want to walk to {place}; show me the way.",
        "Walking route to {place}, please.",
    ), lambda v: [("maps_show_directions", ("", v["place"], "w"))]),
    I("directions_transit", (
        "How do I get to {place} by public transit?",
        "Show me transit directions to {place}.",
        "Get directions to {place} by bus or train.",
        "I want to take public transport to {place}; show me the route.",
        "Transit route to {place}, please.",
    ), lambda v: [("maps_show_directions", ("", v["place"], "r"))]),
    I("directions_between", (
        "Show me driving directions from {place} to {place2}.",
        "How do I drive from {place} to {place2}?",
        "Get directions from {place} to {place2}.",
        "Route from {place} to {place2} by car, please.",
        "Navigate from {place} to {place2}.",
    ), lambda v: [("maps_show_directions", (v["place"], v["place2"], "d"))]),
    I("sms_location", (
        "Send {person} the location of {place}.",
        "Text {person} a map link to {place}.",
        "Share {place} with {person} by SMS.",
        "Open {place} in Maps and text the link to {person}.",
        "Let {person} know where {place} is with a text message containing the map link.",
    ), lambda v: [phone(v["person"]), ("maps_open_location", (v["place"],)), sms(["$1"], "$2")]),
    I("sms_directions", (
        "Text {person} directions to {place}.",
        "Send {person} driving directions to {place} by SMS.",
        "Get directions to {place} and text them to {person}.",
        "Share the route to {place} with {person} in a text.",
        "Message {person} the directions to {place}.",
    ), lambda v: [phone(v["person"]), ("maps_show_directions", ("", v["place"], "d")), sms(["$1"], "$2")]),
    I("email_directions", (
        "Email {person} directions from {place} to {place2} with the subject {subject}.",
        "Send {person} an email titled {subject} with directions from {place} to {place2}.",
        "Get directions from {place} to {place2} and email them to {person}, subject {subject}.",
        "Compose an email to {person} about {subject} that includes the route from {place} to {place2}.",
        "Share driving directions from {place} to {place2} with {person} by email, subject {subject}.",
    ), lambda v: [email(v["person"]), ("maps_show_directions", (v["place"], v["place2"], "d")),
                  compose(["$1"], v["subject"], context="$2")]),
    I("email_location", (
        "Email {person} the location of {place} with the subject {subject}.",
        "Send {person} an email titled {subject} with a map link to {place}.",
        "Open {place} in Maps and email the link to {person}, subject {subject}.",
        "Compose an email to {person} about {subject} including where {place} is.",
        "Share the map location of {place} with {person} by email, subject {subject}.",
    ), lambda v: [email(v["person"]), ("maps_open_location", (v["place"],)),
                  compose(["$1"], v["subject"], context="$2")]),
    # --- notes ----------------------------------------------------------------------------
    I("note_create", (
        "Create a note called {note} that says {text}.",
        "Make a new note named {note} with the content {text}.",
        "Write a note titled {note}: {text}.",
        "Start a note {note} containing {text}.",
        "Jot down {text} in a new note called {note}.",
    ), lambda v: [("create_note", (v["note"], v["text"], ""))]),
    I("note_create_folder", (
        "Create a note called {note} in the {folder} folder that says {text}.",
        "Make a new note named {note} in {folder} with the content {text}.",
        "In my {folder} folder, write a note titled {note}: {text}.",
        "Start a note {note} under {folder} containing {text}.",
        "Jot down {text} in a new note called {note} in the folder {folder}.",
    ), lambda v: [("create_note", (v["note"], v["text"], v["folder"]))]),
    I("note_open", (
        "Open my note {note}.",
        "What does my note called {note} say?",
        "Show me the note {note}.",
        "Read the note named {note}.",
        "Pull up my {note} note.",
    ), lambda v: [("open_note", (v["note"], ""))]),
    I("note_append", (
        "Add {text} to my note {note}.",
        "Append {text} to the note called {note}.",
        "Update my {note} note with {text}.",
        "Put {text} at the end of my note {note}.",
        "In the note {note}, add {text}.",
    ), lambda v: [("append_note_content", (v["note"], v["text"], ""))]),
    I("note_summary", (
        "Summarize {file} and save the summary in a new note called {note}.",
        "Create a note named {note} with a summary of {file}.",
        "Write the summary of {file} into a note titled {note}.",
        "Make a note {note} that contains a summary of the document {file}.",
        "Open {file}, summarize it, and put the summary in a new note called {note}.",
    ), lambda v: [open_file(v["file"]), summarize("$1"), ("create_note", (v["note"], "$2", ""))]),
    I("note_append_summary", (
        "Summarize {file} and add the summary to my note {note}.",
        "Append a summary of {file} to the note called {note}.",
        "Update my {note} note with the summary of {file}.",
        "Put a summary of {file} at the end of my note {note}.",
        "Open {file}, summarize it, and append the summary to the note {note}.",
    ), lambda v: [open_file(v["file"]), summarize("$1"), ("append_note_content", (v["note"], "$2", ""))]),
    I("note_email", (
        "Email my note {note} to {person} with the subject {subject}.",
        "Send the contents of the note {note} to {person}, subject {subject}.",
        "Open my note {note} and email it to {person} titled {subject}.",
        "Share my {note} note with {person} by email, subject {subject}.",
        "Compose an email to {person} about {subject} with the content of my note {note}.",
    ), lambda v: [("open_note", (v["note"], "")), email(v["person"]), compose(["$2"], v["subject"], context="$1")]),
    I("note_sms", (
        "Text my note {note} to {person}.",
        "Send the contents of the note {note} to {person} by SMS.",
        "Open my note {note} and text it to {person}.",
        "Share my {note} note with {person} in a text message.",
        "Message {person} what my note {note} says.",
    ), lambda v: [("open_note", (v["note"], "")), phone(v["person"]), sms(["$2"], "$1")]),
    # --- reminders ------------------------------------------------------------------------
    I("reminder_simple", (
        "Remind me to {task}.",
        "Create a reminder to {task}.",
        "Add a reminder: {task}.",
        "Set a reminder for me to {task}.",
        "Don't let me forget to {task}; make a reminder.",
    ), lambda v: [reminder(v)]),
    I("reminder_due", (
        "Remind me to {task} {when}.",
        "Create a reminder to {task} {when}.",
        "Set a reminder {when} to {task}.",
        "Add a reminder for {when}: {task}.",
        "I need to {task} {when}; remind me.",
    ), lambda v: [reminder(v, due=v["start"])]),
    I("reminder_list_priority", (
        "Add a {level} priority reminder to {task} to my {list} list.",
        "Create a reminder to {task} in the {list} list with {level} priority.",
        "Put {task} on my {list} reminders list as {level} priority.",
        "Set a {level}-priority reminder in {list}: {task}.",
        "Remind me to {task}; list {list}, priority {level}.",
    ), lambda v: [reminder(v, list_name=v["list"], priority=v["priority"])]),
    I("reminder_all_day", (
        "Remind me to {task} {day}, all day.",
        "Create an all-day reminder to {task} {day}.",
        "Set an all-day reminder {day}: {task}.",
        "Add a reminder for the whole day {day} to {task}.",
        "I need to {task} {day}; make it an all-day reminder.",
    ), lambda v: [reminder(v, due=v["day_start"], all_day=True)]),
    I("reminder_notes", (
        "Remind me to {task} {when} with the note {text}.",
        "Create a reminder to {task} {when}; notes: {text}.",
        "Set a reminder {when} to {task} and add the note {text}.",
        "Add a reminder for {when} to {task}, noting {text}.",
        "I need to {task} {when}; remind me and attach the note {text}.",
    ), lambda v: [reminder(v, due=v["start"], notes=v["text"])]),
    I("reminder_two", (
        "Remind me to {task} and to {task2}.",
        "Create two reminders: {task} and {task2}.",
        "Add reminders to {task} and {task2}.",
        "Set reminders for me to {task} and {task2}.",
        "Don't let me forget to {task} or to {task2}.",
    ), lambda v: [reminder(v), reminder(v, name=v["task2"])]),
    # --- sms ------------------------------------------------------------------------------
    I("sms_one", (
        "Text {person} saying '{message}'.",
        "Send an SMS to {person}: {message}.",
        "Message {person} that '{message}'.",
        "Send {person} a text: '{message}'.",
        "Let {person} know by text: {message}.",
    ), lambda v: [phone(v["person"]), sms(["$1"], v["message"])]),
    I("sms_two", (
        "Text {person} and {person2} saying '{message}'.",
        "Send an SMS to {person} and {person2}: {message}.",
        "Message {person} and {person2} that '{message}'.",
        "Send {person} and {person2} a group text: '{message}'.",
        "Let {person} and {person2} know by text: {message}.",
    ), lambda v: [phone(v["person"]), phone(v["person2"]), sms(["$1", "$2"], v["message"])]),
    I("sms_three", (
        "Text {person}, {person2} and {person3} saying '{message}'.",
        "Send an SMS to {person}, {person2} and {person3}: {message}.",
        "Message {person}, {person2}, and {person3} that '{message}'.",
        "Send a group text to {person}, {person2} and {person3}: '{message}'.",
        "Let {person}, {person2} and {person3} know by text: {message}.",
    ), lambda v: [phone(v["person"]), phone(v["person2"]), phone(v["person3"]),
                  sms(["$1", "$2", "$3"], v["message"])]),
    I("sms_number", (
        "Text {phone} saying '{message}'.",
        "Send an SMS to {phone}: {message}.",
        "Message the number {phone} that '{message}'.",
        "Send a text to {phone}: '{message}'.",
        "Let {phone} know by text: {message}.",
    ), lambda v: [sms([v["phone"]], v["message"])]),
    I("sms_summary", (
        "Summarize {file} and text the summary to {person}.",
        "Send {person} a summary of {file} by SMS.",
        "Text {person} what {file} is about.",
        "Open {file}, summarize it, and message the summary to {person}.",
        "Share a summary of {file} with {person} in a text message.",
    ), lambda v: [open_file(v["file"]), summarize("$1"), phone(v["person"]), sms(["$3"], "$2")]),
    I("sms_and_email", (
        "Text {person} '{message}' and also email them about {subject}.",
        "Send {person} an SMS saying {message} and an email with the subject {subject}.",
        "Message {person} that '{message}', then email them with subject {subject}.",
        "Both text and email {person}: the text says '{message}', the email subject is {subject}.",
        "Reach {person} by SMS ('{message}') and by email (subject {subject}).",
    ), lambda v: [phone(v["person"]), email(v["person"]), sms(["$1"], v["message"]), compose(["$2"], v["subject"])]),
    # --- zoom -----------------------------------------------------------------------------
    I("zoom_event", (
        "Set up a Zoom meeting about {topic} with {person} {when} and put it on my calendar.",
        "Create a Zoom call on {topic} with {person} {when} and add it to my calendar.",
        "Schedule a Zoom meeting with {person} {when} about {topic}, with a calendar event.",
        "Make a Zoom link for a {topic} meeting with {person} {when} and create the calendar event.",
        "I need a Zoom meeting on {topic} with {person} {when}; add the event to my calendar.",
    ), lambda v: [email(v["person"]), zoom(v, ["$1"]), event(v, ["$1"], notes="$2", title=v["topic"])]),
    I("zoom_email", (
        "Create a Zoom meeting about {topic} {when} and email the link to {person}.",
        "Send {person} a Zoom link for a {topic} meeting {when}.",
        "Set up a Zoom call on {topic} {when} and email {person} the invitation link.",
        "Make a Zoom meeting with {person} {when} about {topic} and send them the link by email.",
        "Email {person} a link to a Zoom meeting {when} on {topic}.",
    ), lambda v: [email(v["person"]), zoom(v, ["$1"]), compose(["$1"], v["topic"], context="$2")]),
    I("zoom_event_two", (
        "Set up a Zoom meeting about {topic} with {person} and {person2} {when} and put it on my calendar.",
        "Create a Zoom call on {topic} with {person} and {person2} {when} and add it to my calendar.",
        "Schedule a Zoom meeting with {person} and {person2} {when} about {topic}, with a calendar event.",
        "Make a Zoom link for a {topic} meeting with {person} and {person2} {when} and create the event.",
        "I need a Zoom meeting on {topic} with {person} and {person2} {when}; add it to my calendar.",
    ), lambda v: [email(v["person"]), email(v["person2"]), zoom(v, ["$1", "$2"]),
                  event(v, ["$1", "$2"], notes="$3", title=v["topic"])]),
    I("zoom_event_duration", (
        "Set up a {duration}-minute Zoom meeting about {topic} with {person} {when} and add it to my calendar.",
        "Create a Zoom call on {topic} with {person} {when} for {duration} minutes and put it on my calendar.",
        "Schedule a {duration} minute Zoom with {person} {when} about {topic}, plus a calendar event.",
        "Make a Zoom link for a {duration}-minute {topic} meeting with {person} {when} and create the event.",
        "I need a Zoom meeting on {topic} with {person} {when} lasting {duration} minutes; add it to my calendar.",
    ), lambda v: [email(v["person"]), zoom(v, ["$1"]), event(v, ["$1"], notes="$2", title=v["topic"])]),
    # --- combinations ---------------------------------------------------------------------
    I("note_and_reminder", (
        "Create a note called {note} saying {text} and remind me to {task}.",
        "Make a note {note} with {text}, and set a reminder to {task}.",
        "Write {text} in a new note named {note}; also remind me to {task}.",
        "Add a note titled {note} containing {text} and a reminder to {task}.",
        "Remind me to {task} and jot down {text} in a note called {note}.",
    ), lambda v: [("create_note", (v["note"], v["text"], "")), reminder(v)]),
    I("event_and_reminder", (
        "Schedule {title} {when} and remind me to {task}.",
        "Add {title} to my calendar {when}, and create a reminder to {task}.",
        "Put {title} on my calendar {when}; also remind me to {task}.",
        "Create an event called {title} {when} and a reminder to {task}.",
        "Remind me to {task} and block {when} for {title}.",
    ), lambda v: [event(v), reminder(v)]),
    I("event_and_sms", (
        "Schedule {title} with {person} {when} and text them '{message}'.",
        "Invite {person} to {title} {when} and send them an SMS saying {message}.",
        "Create an event {title} {when} with {person} invited, and message them: {message}.",
        "Put {title} with {person} on my calendar {when}, then text {person} '{message}'.",
        "Set up {title} {when} inviting {person}, and let them know by text: {message}.",
    ), lambda v: [email(v["person"]), phone(v["person"]), event(v, ["$1"]), sms(["$2"], v["message"])]),
    I("directions_and_event", (
        "Schedule {title} at {place} {when} and show me directions there.",
        "Add {title} at {place} to my calendar {when} and get driving directions to {place}.",
        "Put {title} at {place} on my calendar {when}; also navigate to {place}.",
        "Create an event {title} at {place} {when} and give me directions to it.",
        "I have {title} at {place} {when}: add it to my calendar and show the route.",
    ), lambda v: [event(v, location=v["place"]), ("maps_show_directions", ("", v["place"], "d"))]),
    I("file_email_and_note", (
        "Summarize {file}, email the summary to {person} with the subject {subject}, and save it in a note called {note}.",
        "Send {person} a summary of {file} titled {subject} and also keep it in a note named {note}.",
        "Open {file}, summarize it, email it to {person} (subject {subject}) and create a note {note} with it.",
        "Put the summary of {file} in a new note {note} and email it to {person} with subject {subject}.",
        "Email {person} the summary of {file}, subject {subject}, and write it to a note called {note}.",
    ), lambda v: [open_file(v["file"]), summarize("$1"), email(v["person"]),
                  compose(["$3"], v["subject"], context="$2"), ("create_note", (v["note"], "$2", ""))]),
    I("meeting_full", (
        "Set up a Zoom meeting on {topic} with {person} and {person2} {when}, add it to my calendar, and text {person3} '{message}'.",
        "Create a Zoom call about {topic} {when} with {person} and {person2}, put it on my calendar, and SMS {person3}: {message}.",
        "Schedule a {topic} Zoom with {person} and {person2} {when} with a calendar event, then message {person3} that '{message}'.",
        "I need a Zoom on {topic} {when} with {person} and {person2} on my calendar; also text {person3} saying {message}.",
        "Make a Zoom meeting about {topic} for {person} and {person2} {when}, create the event, and tell {person3} by text: {message}.",
    ), lambda v: [email(v["person"]), email(v["person2"]), phone(v["person3"]), zoom(v, ["$1", "$2"]),
                  event(v, ["$1", "$2"], notes="$4", title=v["topic"]), sms(["$3"], v["message"])]),
    # --- nothing the tools can do: plan is join only ----------------------------------------
    I("unanswerable_web", (
        "What's the weather like in {place} today?",
        "Book me a flight to {place}.",
        "What is the population of {place}?",
        "Find me a cheap hotel in {place}.",
        "What time is it in {place} right now?",
        "Order an Uber to {place}.",
    ), lambda v: [], weight=0.5),
    I("unanswerable_device", (
        "Play some relaxing music.",
        "Turn off the living room lights.",
        "Set an alarm for 6am.",
        "Order a large pepperoni pizza.",
        "What's the stock price of Apple?",
        "Tell me a joke.",
    ), lambda v: [], weight=0.5),
)
